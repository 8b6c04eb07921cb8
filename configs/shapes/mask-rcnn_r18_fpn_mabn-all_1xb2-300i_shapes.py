# Small Mask R-CNN on the built-in shapes data (trains on a CPU); MABN + weight
# centralization in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r18_fpn_1xb2-300i_shapes.py'
# MABN + weight centralization: the layers of mmbcn.schemes.SCHEMES['mabn']
norm_scheme = 'mabn'  # label only: the layers are below
conv_cfg = dict(type='CenteredConv2d')
norm_cfg = dict(type='MABN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    roi_head=dict(
        bbox_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
