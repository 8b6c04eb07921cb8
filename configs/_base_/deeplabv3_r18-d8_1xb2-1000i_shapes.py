# Small DeepLabV3 on the built-in shapes data (trains on 2 CPU cores in a
# few minutes). The leaf configs in configs/shapes/ only write out the scheme's
# layers.
_base_ = [
    './models/deeplabv3_r18-d8_shapes.py',
    './datasets/shapes_semantic.py',
    './schedules/shapes_1000i.py',
    'mmseg::_base_/default_runtime.py',
    './custom_imports.py',
]
# mmbcn's layers and hooks, and the shapes dataset (registered in
# mmseg's DATASETS when its module is imported)
custom_imports = dict(
    imports=['mmbcn', 'mmbcn.datasets.shapes_seg'], allow_failed_imports=False)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # no periodic checkpoints, the last one is saved (save_last)
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=-1,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(window_size=10, by_epoch=False)
# a fixed seed, so that runs of different schemes compare
randomness = dict(seed=0)
# peak memory in the logs (CPU too), and elimination-singularity statistics
# of every norm layer every 50 iterations (<work_dir>/singularity.jsonl);
# neither changes training
custom_hooks = [
    dict(type='PeakMemoryHook'),
    dict(type='SingularityHook', interval=50),
]
