# The backbone of the shapes Mask R-CNN (mmdet's ResNet-18, 32 base
# channels, 7x7 stem: configs/_base_/models/mask-rcnn_r18_fpn_shapes.py) in
# an image classifier for the built-in classification task. Its checkpoint's
# backbone.* keys are that Mask R-CNN's backbone keys, and those of the
# fine-tuned shapes DeepLabV3 (mmseg's ResNet with the same stem, dilating
# the last two stages: configs/_base_/deeplabv3_r18-d8-cls_finetune_*).
model = dict(
    type='BackboneClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        # mmdet's / mmseg's default (True) starts every block as the
        # identity; in 300 iterations it leaves the loss at chance (1.29
        # after 300 iterations against 0.47 with False, BN, lr 0.01)
        zero_init_residual=False,
        init_cfg=None),
    num_classes=4)
