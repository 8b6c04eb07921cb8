# mmdet's Mask R-CNN R-50-FPN on COCO, 1x schedule (12 epochs, lr steps at 8
# and 11, 8 GPUs x 2 images, lr 0.02) as mmdet ships it: torchvision's
# ImageNet BN ResNet-50 with frozen BN statistics (norm_eval) and frozen
# stem and first stage. The Cross-Iteration BN paper's Mask R-CNN setting:
# the leaf in configs/finetune/ puts the scheme's layers in the neck and
# heads and leaves this backbone as it is.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    './custom_imports.py',
]
# The lr above is meant for a total batch of 16 (8 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=16)
