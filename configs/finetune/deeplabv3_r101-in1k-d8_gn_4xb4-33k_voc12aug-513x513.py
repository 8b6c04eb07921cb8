# DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug fine-tuned from Detectron's GN
# ImageNet ResNet-101 (the authors' recipe: 513x513 crops, 4 GPUs x 4 images,
# lr 0.007, poly 0.9); GN in the backbone and ASPP head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb4-33k_voc12aug-513x513.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='detectron-gn',
            checkpoint='open-mmlab://detectron/resnet101_gn')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
