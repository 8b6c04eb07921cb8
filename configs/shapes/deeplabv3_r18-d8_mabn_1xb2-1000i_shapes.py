# Small DeepLabV3 on the built-in shapes data (trains on a CPU); MABN + weight
# centralization in the backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# MABN + weight centralization: the layers of mmbcn.schemes.SCHEMES['mabn']
norm_scheme = 'mabn'  # label only: the layers are below
conv_cfg = dict(type='CenteredConv2d')
norm_cfg = dict(type='MABN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
