# Small Swin Mask R-CNN on the built-in shapes data with PRepBN (SLAB, Guo
# et al. 2024) in place of every LayerNorm of the Swin transformer, as
# mask-rcnn_swin-t-p4-w7_fpn_prepbn_1x_coco.py does it: the blocks' norms
# and the patch embedding, patch merging and output norms (mmdet's
# SwinTransformer builds all from one norm_cfg). PRepBNScheduleHook moves
# each layer from LayerNorm (lam = 1) to RepBN (lam = 0) linearly over the
# run's max_iters; afterwards PRepBN.reparameterize() gives one BatchNorm
# per layer. Same optimizer (AdamW) and schedule as the LayerNorm leaf.
_base_ = './mask-rcnn_swin-tiny_fpn_1xb2-300i_shapes.py'
norm_scheme = 'prepbn'  # label only (mmbcn.schemes.NORM_LABELS)
model = dict(backbone=dict(norm_cfg=dict(type='PRepBN', requires_grad=True)))
# the base's hooks (PeakMemoryHook, SingularityHook), then the schedule;
# total_iters=None: the run's max_iters, read before training
custom_hooks = [
    dict(type='PeakMemoryHook'),
    dict(type='SingularityHook', interval=50),
    dict(type='PRepBNScheduleHook', warmup_iters=0),
]
