# Small Mask R-CNN on the built-in shapes data (trains on a CPU); SyncBN
# (statistics across GPUs) in the backbone only (mmdet's usual Mask R-CNN).
_base_ = '../_base_/mask-rcnn_r18_fpn_1xb2-300i_shapes.py'
norm_scheme = 'syncbn'
