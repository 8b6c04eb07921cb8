# DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug fine-tuned from torchvision's BN
# ImageNet ResNet-101 (the authors' recipe: 513x513 crops, 4 GPUs x 4 images,
# lr 0.007, poly 0.9); BN (per-GPU statistics) in the backbone and ASPP head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb4-33k_voc12aug-513x513.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='torchvision',
            checkpoint='torchvision://resnet101')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
