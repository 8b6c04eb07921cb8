# Mask R-CNN R-50-FPN on COCO, 2x schedule, 8 GPUs x 2 images, from scratch;
# FRN (then the blocks' ReLU, TLU off) in the backbone, FPN and RoI box / mask
# heads.
_base_ = '../_base_/mask-rcnn_r50_fpn_scratch_2x_coco.py'
# FRN (then the blocks' ReLU, TLU off): the layers of
# mmbcn.schemes.SCHEMES['frn']
norm_scheme = 'frn'  # label only: the layers are below
norm_cfg = dict(type='FRN', eps=1e-06, tlu=False, requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
