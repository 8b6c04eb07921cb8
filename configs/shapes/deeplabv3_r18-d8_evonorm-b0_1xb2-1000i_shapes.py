# Small DeepLabV3 on the built-in shapes data (trains on a CPU); EvoNorm-B0 in
# the backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
norm_scheme = 'evonorm-b0'
