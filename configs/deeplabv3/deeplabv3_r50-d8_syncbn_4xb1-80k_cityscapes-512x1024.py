# DeepLabV3 R-50-D8 on Cityscapes (512x1024 crops), 80k iterations, 4 GPUs x 1
# image, from scratch; SyncBN (statistics across GPUs) in the backbone, ASPP
# head and auxiliary head.
_base_ = '../_base_/deeplabv3_r50-d8_scratch_4xb2-80k_cityscapes-512x1024.py'
# SyncBN (statistics across GPUs): the layers of
# mmbcn.schemes.SCHEMES['syncbn']
norm_scheme = 'syncbn'  # label only: the layers are below
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.005))
# 1 image per GPU: half the base's total batch (8), so half its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=4)  # 4 GPUs x 1 image
# Note: needs 2+ GPUs. SyncBN pools the ASPP image-pooling statistics of
# all GPUs; on one GPU mmengine reverts it to BN, which cannot train
# 1 image (see the bn config).
