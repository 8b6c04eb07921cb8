# Small DeepLabV3 on the built-in shapes data (trains on a CPU); GN in the
# backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
