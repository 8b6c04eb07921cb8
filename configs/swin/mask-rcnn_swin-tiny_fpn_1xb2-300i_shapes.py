# Small Swin Mask R-CNN (32 dims, depths 1-1-2-1, window 4) on the built-in
# shapes data, 300 iterations at 2 images, from scratch, AdamW: LayerNorm
# in the Swin transformer, the baseline of the PRepBN config beside it.
_base_ = '../_base_/mask-rcnn_swin-tiny_fpn_1xb2-300i_shapes.py'
norm_scheme = 'ln'  # label only (mmbcn.schemes.NORM_LABELS): the layers are
# the base's, LayerNorm
