# Small Mask R-CNN on the built-in shapes data (trains on a CPU); FRN (then the
# blocks' ReLU, TLU off) in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r18_fpn_1xb2-300i_shapes.py'
# FRN (then the blocks' ReLU, TLU off): the layers of
# mmbcn.schemes.SCHEMES['frn']
norm_scheme = 'frn'  # label only: the layers are below
norm_cfg = dict(type='FRN', eps=1e-06, tlu=False, requires_grad=True)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, conv_cfg=None),
    neck=dict(norm_cfg=norm_cfg, conv_cfg=None),
    roi_head=dict(
        bbox_head=dict(norm_cfg=norm_cfg, conv_cfg=None),
        mask_head=dict(norm_cfg=norm_cfg, conv_cfg=None)))
# paramwise_cfg treats mmbcn's norms as norms (the same for every scheme)
optim_wrapper = dict(constructor='NormAwareOptimWrapperConstructor')
