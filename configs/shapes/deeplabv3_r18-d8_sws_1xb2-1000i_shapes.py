# Small DeepLabV3 on the built-in shapes data (trains on a CPU); Scaled WS
# without normalization (per-channel affine) in the backbone, ASPP head and
# auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# Scaled WS without normalization (per-channel affine): the layers of
# mmbcn.schemes.SCHEMES['sws']
norm_scheme = 'sws'  # label only: the layers are below
conv_cfg = dict(type='ScaledWSConv2d')
norm_cfg = dict(type='ChannelAffine', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
