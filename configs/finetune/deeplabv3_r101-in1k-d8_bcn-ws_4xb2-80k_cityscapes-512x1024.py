# DeepLabV3 R-101-D8 on Cityscapes fine-tuned from the BCN authors' BCN+WS
# ImageNet ResNet-101 (mmseg's recipe: 80k iterations, 4 GPUs x 2 images, lr
# 0.01, 512x1024 crops); BCN + WS in the backbone, ASPP head and auxiliary
# head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb2-80k_cityscapes-512x1024.py'
# BCN + WS: the layers of mmbcn.schemes.SCHEMES['bcn-ws']
norm_scheme = 'bcn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='BCN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=conv_cfg,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='bcn-ws',
            checkpoint='checkpoints/rn101-bcn-ws.pth')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
