# The built-in classification task: the class of the largest shape in each
# 64x64 image (mmbcn.datasets.shapes_cls), one folder per class in
# data/shapes_cls/{train,val}/. Create it with
# `python tools/dataset_converters/make_shapes.py --task cls`.
dataset_type = 'ImageFolderDataset'
data_root = 'data/shapes_cls'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='ClsAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
