# Pretraining the backbone of the shapes DeepLabV3 (mmseg's layers) on
# the built-in classification task at a large batch (1 process x 32 images),
# the ImageNet step of the papers' protocol in miniature. The leaves in
# configs/pretrain/ write out the scheme's layers; configs/shapes/finetune/
# loads the checkpoint (prefix='backbone.').
_base_ = [
    './models/resnet18-v1c_shapes-cls.py',
    './datasets/shapes_cls.py',
    './schedules/shapes-cls_300i.py',
    'mmseg::_base_/default_runtime.py',
    './custom_imports.py',
]
# mmbcn's layers and hooks, the image-folder dataset, its transforms and the
# accuracy metric (registered in mmengine's root registries)
custom_imports = dict(
    imports=['mmbcn', 'mmbcn.datasets.image_folder',
             'mmbcn.datasets.transforms'],
    allow_failed_imports=False)
# (mmseg's default_runtime has no default_hooks: written out here)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # no periodic checkpoints, the last one is saved (save_last)
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=-1,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(window_size=20, by_epoch=False)
randomness = dict(seed=0)
custom_hooks = [dict(type='PeakMemoryHook')]
