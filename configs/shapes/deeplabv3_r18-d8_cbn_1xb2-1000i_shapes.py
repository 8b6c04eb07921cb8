# Small DeepLabV3 on the built-in shapes data (trains on a CPU); Cross-
# Iteration BN in the ASPP head and auxiliary head, the backbone's norms as the
# base writes them.
_base_ = '../_base_/deeplabv3_r18-d8_1xb2-1000i_shapes.py'
# Cross-Iteration BN: the layers of mmbcn.schemes.SCHEMES['cbn']
norm_scheme = 'cbn'  # label only: the layers are below
norm_cfg = dict(type='CrossIterationBN', buffer_num=3, requires_grad=True)
model = dict(
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
# the base's hooks and those the scheme needs
custom_hooks = [
    dict(type='PeakMemoryHook'),
    dict(type='SingularityHook', interval=50),
    dict(type='CBNLinkHook', burnin_fraction=0.6667)]
