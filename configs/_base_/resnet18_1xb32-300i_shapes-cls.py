# Pretraining the ResNet-18 of the shapes Mask R-CNN and DeepLabV3 on
# the built-in classification task at a large batch (1 process x 32 images),
# the ImageNet step of the papers' protocol in miniature. The leaves in
# configs/pretrain/ write out the scheme's layers; configs/shapes/finetune/
# loads the checkpoint (prefix='backbone.').
_base_ = [
    './models/resnet18_shapes-cls.py',
    './datasets/shapes_cls.py',
    './schedules/shapes-cls_300i.py',
    'mmdet::_base_/default_runtime.py',
    './custom_imports.py',
]
# mmbcn's layers and hooks, the image-folder dataset, its transforms and the
# accuracy metric (registered in mmengine's root registries)
custom_imports = dict(
    imports=['mmbcn', 'mmbcn.datasets.image_folder',
             'mmbcn.datasets.transforms'],
    allow_failed_imports=False)
default_hooks = dict(
    logger=dict(interval=20),
    # no periodic checkpoints, the last one is saved (save_last)
    checkpoint=dict(by_epoch=False, interval=-1, max_keep_ckpts=1))
log_processor = dict(window_size=20, by_epoch=False)
randomness = dict(seed=0)
custom_hooks = [dict(type='PeakMemoryHook')]
