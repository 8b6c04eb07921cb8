# Small DeepLabV3 on the built-in shapes data fine-tuned for 200 iterations
# from the ResNet-18 pretrained at the micro batch (BN over 1 image) on the
# built-in classification task; BN (per-GPU statistics) in the backbone, ASPP
# head and auxiliary head.
_base_ = '../../_base_/deeplabv3_r18-d8-cls_finetune_1xb2-200i_shapes.py'
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
            checkpoint='work_dirs/reproduce/resnet18_bn_1xb32-mb1-300i_shapes-cls_seed0/iter_300.pth')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
