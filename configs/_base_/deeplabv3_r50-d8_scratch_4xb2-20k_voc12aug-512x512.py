# mmseg's DeepLabV3 R-50-D8 on PASCAL VOC 2012 + aug, 20k iterations, at 2
# images per GPU (4 GPUs x 2 = 8, half mmseg's batch of 16, so half its lr),
# trained from scratch so that every normalization layer is the scheme's.
# The configs in configs/deeplabv3/ write out the scheme's layers (and the
# batch size).
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py',
    './custom_imports.py',
]
model = dict(
    # From scratch (configs/finetune/ starts from ImageNet weights trained
    # with the same layers)
    pretrained=None,
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None))
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.005))
# The lr above is meant for a total batch of 8 (4 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=8)
