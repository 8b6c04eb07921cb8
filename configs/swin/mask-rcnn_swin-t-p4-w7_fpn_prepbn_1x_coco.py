# Mask R-CNN Swin-T-FPN on COCO, 1x schedule, 8 GPUs x 2 images, with
# PRepBN (SLAB, Guo et al. 2024) in place of every LayerNorm of the Swin
# transformer: its blocks' two norms, and, since mmdet's SwinTransformer
# builds all its norms from one norm_cfg, the patch embedding, patch merging
# and output norms too (all of them see (N, L, C) tokens, as PRepBN
# expects). PRepBNScheduleHook moves each layer from LayerNorm (lam = 1) to
# RepBN (lam = 0) linearly over the whole run; afterwards
# PRepBN.reparameterize() gives one BatchNorm per layer.
# The ImageNet Swin-T weights of the base are LayerNorm weights: they load
# into the attention and MLP layers, not into PRepBN (whose norms are named
# <norm>.ln / <norm>.repbn), which start at weight 1, bias 0.
_base_ = './mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
model = dict(backbone=dict(norm_cfg=dict(type='PRepBN', requires_grad=True)))
# total_iters=None: the run's max_iters, read before training
custom_hooks = [dict(type='PRepBNScheduleHook', warmup_iters=0)]
