# Mask R-CNN R-50-FPN on COCO, 2x schedule, 8 GPUs x 2 images, from scratch; BN
# (per-GPU statistics) in the backbone only (mmdet's usual Mask R-CNN).
_base_ = '../_base_/mask-rcnn_r50_fpn_scratch_2x_coco.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
