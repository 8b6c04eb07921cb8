# Small Mask R-CNN on the built-in shapes data fine-tuned for 100 iterations
# from the ResNet-18 pretrained at the micro batch (BN over 1 image) on the
# built-in classification task; BN (per-GPU statistics) in the backbone only
# (mmdet's usual Mask R-CNN).
_base_ = '../../_base_/mask-rcnn_r18-cls_fpn_finetune_1xb2-100i_shapes.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            checkpoint='work_dirs/reproduce/resnet18_bn_1xb32-mb1-300i_shapes-cls_seed0/iter_300.pth')))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
