# DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug (512x512 crops), 20k iterations,
# 4 GPUs x 1 image, from scratch; BN (per-GPU statistics) in the backbone, ASPP
# head and auxiliary head.
_base_ = '../_base_/deeplabv3_r101-d8_scratch_4xb2-20k_voc12aug-512x512.py'
# BN (per-GPU statistics): the layers of mmbcn.schemes.SCHEMES['bn']
norm_scheme = 'bn'  # label only: the layers are below
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=None))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(
    constructor='NormAwareOptimWrapperConstructor',
    optimizer=dict(lr=0.0025))
# 1 image per GPU: half the base's total batch (8), so half its lr
# (optim_wrapper above)
train_dataloader = dict(batch_size=1)
auto_scale_lr = dict(base_batch_size=4)  # 4 GPUs x 1 image
# Note: this does not train. ASPP's image-pooling branch gives BN one
# value per channel at 1 image and torch raises "Expected more than 1 value
# per channel when training": the micro-batch failure of BN, kept for
# the comparison.
