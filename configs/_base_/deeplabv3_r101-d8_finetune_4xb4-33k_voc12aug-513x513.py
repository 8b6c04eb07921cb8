# DeepLabV3 R-101 on PASCAL VOC 2012 + aug, fine-tuned from ImageNet weights
# with the recipe of the BCN / WS authors' DeepLabV3 experiments: ResNet-101
# with the torchvision layout (plain 7x7 stem, the layout of the ImageNet
# checkpoints) dilated to output stride 8, multi-grid (1, 1, 1), ASPP with
# image pooling and no auxiliary head, 513x513 crops, a total batch of 16
# (4 GPUs x 4 images), lr 0.007 with poly decay (power 0.9). mmseg's
# -d8 model and VOC aug data otherwise. The configs in configs/finetune/ add
# the scheme's layers and the backbone's init_cfg.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512.py',
    './custom_imports.py',
]
crop_size = (513, 513)
model = dict(
    pretrained=None,  # the backbone's init_cfg loads the ImageNet weights
    data_preprocessor=dict(size=crop_size),
    # multi-grid (1, 1, 1) at the last stage's rate 4 (mmseg's multi_grid
    # gives the rates themselves)
    backbone=dict(type='ResNet', deep_stem=False, multi_grid=(4, 4, 4)),
    auxiliary_head=None)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 513),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs')
]
voc_train = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline)
voc_aug = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(
        img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=4, dataset=dict(datasets=[voc_train, voc_aug]))
# about 50 epochs of the 10,582 aug images at a batch of 16
max_iters = 33000
optim_wrapper = dict(optimizer=dict(lr=0.007))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=3000)
default_hooks = dict(checkpoint=dict(interval=3000))
# The lr above is meant for a total batch of 16 (4 GPUs x 4 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=16)
