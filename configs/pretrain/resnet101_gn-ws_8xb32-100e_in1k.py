# ImageNet-1k pretraining of mmdet's ResNet-101 (Mask R-CNN R-101-FPN,
# DeepLabV3 R-101-D8) in a classifier, 8 GPUs x 32 images, 100 epochs; GN + WS
# in the backbone.
_base_ = '../_base_/resnet101_8xb32-100e_in1k.py'
# GN + WS: the layers of mmbcn.schemes.SCHEMES['gn-ws']
norm_scheme = 'gn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
