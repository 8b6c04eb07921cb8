# Mask R-CNN R-101-FPN on COCO, 2x schedule, 8 GPUs x 2 images, from scratch;
# BCN + WS in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r101_fpn_scratch_2x_coco.py'
norm_scheme = 'bcn-ws'
