# ImageNet-1k pretraining of mmdet's ResNet-101 (Mask R-CNN R-101-FPN,
# DeepLabV3 R-101-D8) in a classifier, 8 GPUs x 1 image (the papers' micro-
# batch setting), 100 epochs; GN in the backbone.
_base_ = '../_base_/resnet101_8xb32-100e_in1k.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.003125))
# 1 image per GPU: 1/32 of the base's total batch (256), so 1/32 of its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=8)  # 8 GPUs x 1 image
