# Small DeepLabV3 on the built-in shapes data (trains on a CPU); FRN (then the
# blocks' ReLU, TLU off) in the backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# FRN (then the blocks' ReLU, TLU off): the layers of
# mmbcn.schemes.SCHEMES['frn']
norm_scheme = 'frn'  # label only: the layers are below
norm_cfg = dict(type='FRN', eps=1e-06, tlu=False, requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
