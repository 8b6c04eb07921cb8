# Pretraining the shapes Mask R-CNN's and DeepLabV3's ResNet-18 on the built-in
# classification task, 1 process x 32 images, 300 iterations; BCN + WS in the
# backbone.
_base_ = '../_base_/resnet18_1xb32-300i_shapes-cls.py'
# BCN + WS: the layers of mmbcn.schemes.SCHEMES['bcn-ws']
norm_scheme = 'bcn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='BCN', num_groups=32, requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
