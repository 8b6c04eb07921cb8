# Mask R-CNN R-50-FPN on COCO, 1x schedule, 8 GPUs x 2 images, from scratch;
# BCN + WS in the backbone, FPN and RoI box / mask heads.
_base_ = '../_base_/mask-rcnn_r50_fpn_scratch_1x_coco.py'
norm_scheme = 'bcn-ws'
