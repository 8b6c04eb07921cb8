# Pretraining the shapes DeepLabV3's ResNetV1c-18 on the built-in
# classification task, 1 process x 32 images, 300 iterations; GN in the
# backbone.
_base_ = '../_base_/resnet18-v1c_1xb32-300i_shapes-cls.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
