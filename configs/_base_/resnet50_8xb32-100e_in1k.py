# ImageNet-1k pretraining of the backbone of Mask R-CNN R-50-FPN
# (configs/finetune/mask-rcnn_r50-in1k_*: mmdet's ResNet-50) in an image
# classifier: 8 GPUs x 32 images, 100 epochs. Its checkpoint's backbone.* keys
# are the fine-tuning model's backbone keys: load it there with
# dict(type='Pretrained', checkpoint=..., prefix='backbone.'). The leaves in
# configs/pretrain/ write out the scheme's layers.
_base_ = [
    './datasets/imagenet.py',
    './schedules/imagenet_bs256_100e.py',
    'mmdet::_base_/default_runtime.py',
    './custom_imports.py',
]
custom_imports = dict(
    imports=['mmbcn', 'mmbcn.datasets.image_folder',
             'mmbcn.datasets.transforms'],
    allow_failed_imports=False)
model = dict(
    type='BackboneClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    num_classes=1000)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
