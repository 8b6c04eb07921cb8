# Mask R-CNN R-50-FPN on COCO, 2x schedule, 8 GPUs x 2 images, from scratch;
# MABN + weight centralization in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r50_fpn_scratch_2x_coco.py'
# MABN + weight centralization: the layers of mmbcn.schemes.SCHEMES['mabn']
norm_scheme = 'mabn'  # label only: the layers are below
conv_cfg = dict(type='CenteredConv2d')
norm_cfg = dict(type='MABN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            conv_cfg=conv_cfg),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
