# DeepLabV3 R-50-D8 on Cityscapes (512x1024 crops), 80k iterations, 4 GPUs x 2
# images, from scratch; BN (per-GPU statistics) in the backbone, ASPP head and
# auxiliary head.
_base_ = '../_base_/deeplabv3_r50-d8_scratch_4xb2-80k_cityscapes-512x1024.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
