# ImageNet-1k for backbone pretraining, in the layout of mmpretrain's
# ImageNet configs: data/imagenet/train/<wnid>/*.JPEG (one folder per class,
# label = index of the sorted wnids) and data/imagenet/val/*.JPEG listed in
# data/imagenet/meta/val.txt ("<file> <label>" lines). Augmentation as in
# the WS / BCN papers' ImageNet training: random-resized 224 crops and
# flips; evaluation on the centre 224 crop of the 256 short-edge resize.
dataset_type = 'ImageFolderDataset'
data_root = 'data/imagenet'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', size=224),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortEdge', size=256),
    dict(type='mmcv.CenterCrop', crop_size=224),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=5,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=5,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        num_classes=1000,
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='ClsAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
