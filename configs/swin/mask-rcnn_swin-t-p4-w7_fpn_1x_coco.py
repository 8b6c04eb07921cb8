# Mask R-CNN Swin-T-FPN on COCO, 1x schedule, 8 GPUs x 2 images: mmdet's
# config as it is (LayerNorm in the Swin transformer), with mmbcn's layers
# and hooks importable; the baseline of the PRepBN config beside it.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['mmbcn'], allow_failed_imports=False)
