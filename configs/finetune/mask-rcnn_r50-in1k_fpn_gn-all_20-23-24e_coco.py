# Mask R-CNN R-50-FPN on COCO fine-tuned from Detectron's GN ImageNet
# ResNet-50, 24 epochs (lr steps at 20 and 23), 8 GPUs x 2 images; GN in the
# backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r50_fpn_finetune_20-23-24e_coco.py'
# GN: the layers of mmbcn.schemes.SCHEMES['gn']
norm_scheme = 'gn'  # label only: the layers are below
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='detectron-gn',
            checkpoint='open-mmlab://detectron/resnet50_gn')),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)),
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
