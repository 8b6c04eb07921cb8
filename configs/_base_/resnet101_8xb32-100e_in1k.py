# ImageNet-1k pretraining of the backbone of Mask R-CNN R-101-FPN and DeepLabV3
# R-101-D8 (configs/finetune/*r101-in1k*: mmdet's ResNet-101, and mmseg's
# ResNet-101 with the same 7x7 stem and keys) in an image classifier: the
# R-50 recipe (8 GPUs x 32 images, 100 epochs) at depth 101. Load the
# checkpoint with dict(type='Pretrained', checkpoint=..., prefix='backbone.').
_base_ = './resnet50_8xb32-100e_in1k.py'
model = dict(backbone=dict(depth=101))
