# The small Mask R-CNN on the built-in shapes data fine-tuned from its
# backbone pretrained on the built-in classification task (configs/pretrain/
# resnet18_*_shapes-cls.py), 100 iterations: mmdet's settings for a
# pretrained backbone (stem and first stage frozen, BN statistics frozen, as
# configs/_base_/mask-rcnn_r50_fpn_finetune_2x_coco.py) and otherwise the
# from-scratch recipe, at a third of its length. The leaves in
# configs/shapes/finetune/ write out the scheme's layers and the checkpoint
# (tools/reproduce.py gives each seed its own).
_base_ = './mask-rcnn_r18_fpn_1xb2-300i_shapes.py'

max_iters = 100
warmup_iters = 20
model = dict(
    backbone=dict(
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                      checkpoint=None)))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='PolyLR', power=0.9, eta_min=0, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
