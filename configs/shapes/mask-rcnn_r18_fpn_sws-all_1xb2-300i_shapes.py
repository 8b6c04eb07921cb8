# Small Mask R-CNN on the built-in shapes data (trains on a CPU); Scaled WS
# without normalization (per-channel affine) in the backbone, FPN and RoI box /
# mask heads.
_base_ = '../_base_/mask-rcnn_r18_fpn_1xb2-300i_shapes.py'
norm_scheme = 'sws'
