# DeepLabV3 R-101-D8 on Cityscapes (512x1024 crops), 80k iterations, 4 GPUs x 2
# images, from scratch; BCN + WS in the backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r101-d8_scratch_4xb2-80k_cityscapes-512x1024.py'
norm_scheme = 'bcn-ws'
