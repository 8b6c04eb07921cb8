# Small Mask R-CNN on the built-in shapes data (trains on 2 CPU cores in a
# few minutes). The leaf configs in configs/shapes/ only write out the scheme's
# layers.
_base_ = [
    './models/mask-rcnn_r18_fpn_shapes.py',
    './datasets/shapes_instance.py',
    './schedules/shapes_300i.py',
    'mmdet::_base_/default_runtime.py',
    './custom_imports.py',
]
# mmbcn's layers and hooks, and the shapes dataset (registered in
# mmdet's DATASETS when its module is imported)
custom_imports = dict(
    imports=['mmbcn', 'mmbcn.datasets.shapes_det'], allow_failed_imports=False)
default_hooks = dict(
    logger=dict(interval=10),
    # no periodic checkpoints, the last one is saved (save_last)
    checkpoint=dict(by_epoch=False, interval=-1, max_keep_ckpts=1))
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
