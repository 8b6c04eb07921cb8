# The 2x fine-tuning recipe with the lr steps at epochs 20 and 23 (mmdet's
# configs/gn+ws/*_20-23-24e_coco.py).
_base_ = './mask-rcnn_r101_fpn_finetune_2x_coco.py'
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=24,
        by_epoch=True,
        milestones=[20, 23],
        gamma=0.1)
]
