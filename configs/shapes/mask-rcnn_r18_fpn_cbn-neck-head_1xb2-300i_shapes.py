# Small Mask R-CNN on the built-in shapes data (trains on a CPU); Cross-
# Iteration BN in the FPN and RoI box / mask heads, the backbone's norms as the
# base writes them.
_base_ = '../_base_/mask-rcnn_r18_fpn_1xb2-300i_shapes.py'
# Cross-Iteration BN: the layers of mmbcn.schemes.SCHEMES['cbn']
norm_scheme = 'cbn'  # label only: the layers are below
norm_cfg = dict(type='CrossIterationBN', buffer_num=3, requires_grad=True)
model = dict(
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
# the base's hooks and those the scheme needs
custom_hooks = [
    dict(type='PeakMemoryHook'),
    dict(type='SingularityHook', interval=50),
    dict(type='CBNLinkHook', burnin_fraction=0.6667)]
