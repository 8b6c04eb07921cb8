# mmseg's DeepLabV3 R-101-D8 on Cityscapes, 80k iterations, 4 GPUs x 2
# images (lr 0.01), trained from scratch so that every normalization layer
# is the scheme's. The configs in configs/deeplabv3/ write out the
# scheme's layers (and the batch size).
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    './custom_imports.py',
]
model = dict(
    # From scratch (configs/finetune/ starts from ImageNet weights trained
    # with the same layers)
    pretrained=None,
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None))
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.01))
# The lr above is meant for a total batch of 8 (4 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=8)
