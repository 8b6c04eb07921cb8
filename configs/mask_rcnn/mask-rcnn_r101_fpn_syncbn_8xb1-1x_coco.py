# Mask R-CNN R-101-FPN on COCO, 1x schedule, 8 GPUs x 1 image, from scratch;
# SyncBN (statistics across GPUs) in the backbone only (mmdet's usual Mask
# R-CNN).
_base_ = '../_base_/mask-rcnn_r101_fpn_scratch_1x_coco.py'
# SyncBN (statistics across GPUs): the layers of
# mmbcn.schemes.SCHEMES['syncbn']
norm_scheme = 'syncbn'  # label only: the layers are below
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.01))
# 1 image per GPU: half the base's total batch (16), so half its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=8)  # 8 GPUs x 1 image
