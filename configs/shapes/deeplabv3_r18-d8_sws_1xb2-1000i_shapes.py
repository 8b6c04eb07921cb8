# Small DeepLabV3 on the built-in shapes data (trains on a CPU); Scaled WS
# without normalization (per-channel affine) in the backbone, ASPP head and
# auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
norm_scheme = 'sws'
