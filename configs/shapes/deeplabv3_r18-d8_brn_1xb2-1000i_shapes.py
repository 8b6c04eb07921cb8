# Small DeepLabV3 on the built-in shapes data (trains on a CPU); Batch
# Renormalization in the backbone, ASPP head and auxiliary head.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# Batch Renormalization: the layers of mmbcn.schemes.SCHEMES['brn']
norm_scheme = 'brn'  # label only: the layers are below
norm_cfg = dict(type='BatchRenorm', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
# the base's hooks and those the scheme needs
custom_hooks = [
    dict(type='PeakMemoryHook'),
    dict(type='SingularityHook', interval=50),
    dict(
        type='BatchRenormScheduleHook',
        r_max=3.0,
        d_max=5.0,
        start_iter=0.05,
        r_max_iter=0.4,
        d_max_iter=0.25,
        by_fraction=True)]
