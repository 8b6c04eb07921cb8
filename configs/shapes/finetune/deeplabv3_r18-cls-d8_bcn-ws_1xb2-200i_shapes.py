# Small DeepLabV3 on the built-in shapes data fine-tuned for 200 iterations
# from the ResNet-18 pretrained at 1 process x 32 images on the built-in
# classification task; BCN + WS in the backbone, ASPP head and auxiliary head.
_base_ = '../../_base_/deeplabv3_r18-d8-cls_finetune_1xb2-200i_shapes.py'
# BCN + WS: the layers of mmbcn.schemes.SCHEMES['bcn-ws']
norm_scheme = 'bcn-ws'  # label only: the layers are below
conv_cfg = dict(type='WSConv2d')
norm_cfg = dict(type='BCN', num_groups=32, requires_grad=True)
model = dict(
    backbone=dict(
        norm_cfg=norm_cfg,
        conv_cfg=conv_cfg,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            checkpoint='work_dirs/reproduce/resnet18_bcn-ws_1xb32-300i_shapes-cls_seed0/iter_300.pth')),
    decode_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg, conv_cfg=conv_cfg))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
