# Mask R-CNN R-101-FPN on COCO, 1x schedule, 8 GPUs x 1 image, from scratch; BN
# (per-GPU statistics) in the backbone only (mmdet's usual Mask R-CNN).
_base_ = '../_base_/mask-rcnn_r101_fpn_scratch_1x_coco.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.01))
# 1 image per GPU: half the base's total batch (16), so half its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=8)  # 8 GPUs x 1 image
