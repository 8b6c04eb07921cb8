# DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug fine-tuned from the BCN authors'
# BCN+WS ImageNet ResNet-101 (the authors' recipe: 513x513 crops, 4 GPUs x 4
# images, lr 0.007, poly 0.9); BCN (large-batch mode, statistics synchronized
# across GPUs) + WS in the backbone and ASPP head.
_base_ = '../_base_/deeplabv3_r101-d8_finetune_4xb4-33k_voc12aug-513x513.py'
# BCN (large-batch mode, statistics synchronized across GPUs) + WS: the layers
# of mmbcn.schemes.SCHEMES['bcn-ws-large']
norm_scheme = 'bcn-ws-large'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(
    type='BCN',
    num_groups=32,
    mode='large',
    sync='layer',
    requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=conv_cfg,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='bcn-ws',
            checkpoint='checkpoints/rn101-bcn-ws.pth')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
