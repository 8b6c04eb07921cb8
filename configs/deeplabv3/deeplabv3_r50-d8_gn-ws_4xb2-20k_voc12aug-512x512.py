# DeepLabV3 R-50-D8 on PASCAL VOC 2012 + aug (512x512 crops), 20k iterations, 4
# GPUs x 2 images, from scratch; GN + WS in the backbone, ASPP head and
# auxiliary head.
_base_ = '../_base_/deeplabv3_r50-d8_scratch_4xb2-20k_voc12aug-512x512.py'
# GN + WS: the layers of mmbcn.schemes.SCHEMES['gn-ws']
norm_scheme = 'gn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
