# Mask R-CNN R-101-FPN on COCO, 2x schedule, 8 GPUs x 1 image, from scratch; GN
# in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r101_fpn_scratch_2x_coco.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
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
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.01))
# 1 image per GPU: half the base's total batch (16), so half its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=8)  # 8 GPUs x 1 image
