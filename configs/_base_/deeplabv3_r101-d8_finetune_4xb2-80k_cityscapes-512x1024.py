# mmseg's DeepLabV3 R-101-D8 on Cityscapes (80k iterations, 4 GPUs x 2
# images, lr 0.01, 512x1024 crops) fine-tuned from ImageNet weights, with the
# backbone of the VOC fine-tuning configs: ResNet-101 with the torchvision
# layout of the ImageNet checkpoints (plain 7x7 stem), output stride 8,
# multi-grid (1, 1, 1) at the last stage's rate 4. The configs in
# configs/finetune/ add the scheme's layers and the backbone's init_cfg.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    './custom_imports.py',
]
model = dict(
    pretrained=None,  # the backbone's init_cfg loads the ImageNet weights
    backbone=dict(type='ResNet', deep_stem=False, multi_grid=(4, 4, 4)))
# The lr above is meant for a total batch of 8 (4 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=8)
