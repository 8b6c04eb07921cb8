# Pretraining the shapes Mask R-CNN's and DeepLabV3's ResNet-18 on the built-in
# classification task at the micro batch: BN statistics over 1 image (32 per
# step), 300 iterations; BN (per-GPU statistics) in the backbone.
_base_ = '../_base_/resnet18_1xb32-300i_shapes-cls.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None), micro_batch=1)
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
# Micro-batch BN: the backbone runs on chunks of 1 image, so BN's statistics
# come from 1 image, as on 32 GPUs x 1 image (one process emulates them;
# mmbcn.models.classifier). The loss is the mean over the 32 images.
