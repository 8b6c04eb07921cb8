# Mask R-CNN R-50-FPN on COCO fine-tuned from the WS authors' GN+WS ImageNet
# ResNet-50, 24 epochs (lr steps at 20 and 23), 8 GPUs x 2 images; GN + WS in
# the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r50_fpn_finetune_20-23-24e_coco.py'
# GN + WS: the layers of mmbcn.schemes.SCHEMES['gn-ws']
norm_scheme = 'gn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=conv_cfg,
        init_cfg=dict(
            type='ConvertedPretrained',
            source='gn-ws',
            checkpoint='open-mmlab://jhu/resnet50_gn_ws')),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            conv_cfg=conv_cfg),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
