# Mask R-CNN R-50-FPN on COCO fine-tuned from torchvision's BN ImageNet
# ResNet-50 (mmdet's 1x: 12 epochs, frozen BN statistics), 8 GPUs x 2 images;
# Cross-Iteration BN in the FPN and RoI box / mask heads, the backbone's norms
# as the base writes them.
_base_ = '../_base_/mask-rcnn_r50_fpn_finetune_1x_coco.py'
# Cross-Iteration BN: the layers of mmbcn.schemes.SCHEMES['cbn']
norm_scheme = 'cbn'  # label only: the layers are below
norm_cfg = dict(type='CrossIterationBN', buffer_num=3, requires_grad=True)
model = dict(
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)),
    backbone=dict(
        init_cfg=dict(
            type='ConvertedPretrained',
            source='torchvision',
            checkpoint='torchvision://resnet50')))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
# the base's hooks and those the scheme needs
custom_hooks = [dict(type='CBNLinkHook', burnin_fraction=0.6667)]
