# A narrow Mask R-CNN for the 128x128 shapes data that trains on a CPU:
# ResNet-18 with 32 base channels, 64-channel FPN / heads, a 2-conv + 1-fc
# box head and few sampled RoIs. Inherits mmdet's Mask R-CNN R-50-FPN and
# shrinks it; the leaves write out their norm / conv layers.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 4  # circle, square, triangle, star
width = 64  # channels of the FPN and of all heads

model = dict(
    backbone=dict(
        depth=18,
        base_channels=32,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),  # from scratch
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        # ConvFCBBoxHead with explicit counts (mmdet's Shared4Conv1FC fixes
        # four convs). Every scheme keeps this head, so results compare:
        # "-all" schemes normalize its convs, bn / syncbn leave them plain.
        bbox_head=dict(
            type='ConvFCBBoxHead',
            num_shared_convs=2,
            num_shared_fcs=1,
            in_channels=width,
            conv_out_channels=width,
            fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(
            num_convs=2,
            in_channels=width,
            conv_out_channels=width,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=30)))
