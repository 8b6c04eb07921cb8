# DeepLabV3 R-101-D8 on Cityscapes fine-tuned from torchvision's BN ImageNet
# ResNet-101 (mmseg's recipe: 80k iterations, 4 GPUs x 2 images, lr 0.01,
# 512x1024 crops); SyncBN (statistics across GPUs) in the backbone, ASPP head
# and auxiliary head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb2-80k_cityscapes-512x1024.py'
# SyncBN (statistics across GPUs): the layers of
# mmbcn.schemes.SCHEMES['syncbn']
norm_scheme = 'syncbn'  # label only: the layers are below
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='torchvision',
            checkpoint='torchvision://resnet101'),
        norm_eval=False),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
