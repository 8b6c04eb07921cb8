# DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug fine-tuned from the WS authors'
# GN+WS ImageNet ResNet-101 (the authors' recipe: 513x513 crops, 4 GPUs x 4
# images, lr 0.007, poly 0.9); GN + WS in the backbone and ASPP head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb4-33k_voc12aug-513x513.py'
# GN + WS: the layers of mmbcn.schemes.SCHEMES['gn-ws']
norm_scheme = 'gn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=conv_cfg,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='gn-ws',
            checkpoint='open-mmlab://jhu/resnet101_gn_ws')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
