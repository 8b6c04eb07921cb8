# mmdet's Mask R-CNN R-101-FPN on COCO, 2x schedule (24 epochs, lr steps at
# 16 and 22, 8 GPUs x 2 images, lr 0.02), fine-tuned from ImageNet weights:
# mmdet's settings for a pretrained backbone (frozen stem and first stage,
# BN statistics frozen) and the recipe of mmdet's configs/gn+ws/. The
# configs in configs/finetune/ add the scheme's layers and the backbone's
# init_cfg (ImageNet weights trained with the same layers).
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py',
    './custom_imports.py',
]
# The lr above is meant for a total batch of 16 (8 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=16)
