# Small Mask R-CNN on the built-in shapes data fine-tuned for 100 iterations
# from the ResNet-18 pretrained at 1 process x 32 images on the built-in
# classification task; BCN in the backbone, FPN and RoI box / mask heads.
_base_ = '../../_base_/mask-rcnn_r18-cls_fpn_finetune_1xb2-100i_shapes.py'
# BCN: the layers of mmbcn.schemes.SCHEMES['bcn']
norm_scheme = 'bcn'  # label only: the layers are below
norm_cfg = dict(type='BCN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=None,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            checkpoint='work_dirs/reproduce/resnet18_bcn_1xb32-300i_shapes-cls_seed0/iter_300.pth')),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
