# mmdet's Mask R-CNN R-50-FPN on COCO, 2x schedule (24 epochs, 8 GPUs x 2
# images, lr 0.02), trained from scratch so that every normalization layer
# is the scheme's. The configs in configs/mask_rcnn/ write out the scheme's
# layers.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py',
    './custom_imports.py',
]
model = dict(
    backbone=dict(
        frozen_stages=-1,  # train every stage
        norm_eval=False,  # update the normalization statistics
        # From scratch (configs/finetune/ starts from ImageNet weights
        # trained with the same layers)
        init_cfg=None))
# The lr above is meant for a total batch of 16 (8 GPUs x 2 images);
# --auto-scale-lr rescales it linearly for the batch actually used.
auto_scale_lr = dict(enable=False, base_batch_size=16)
