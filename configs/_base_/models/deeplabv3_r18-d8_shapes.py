# A narrow DeepLabV3 for the 128x128 shapes data that trains on a CPU:
# ResNet-18-D8 (ResNetV1c, 32 base channels), a 64-channel ASPP head with
# dilations suited to the 16x16 feature map, a 32-channel auxiliary head.
# Inherits mmseg's DeepLabV3 R-50-D8; the norm / conv layers come from the
# leaf configs (written out).
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'

num_classes = 5  # background + circle, square, triangle, star

model = dict(
    pretrained=None,  # from scratch
    data_preprocessor=dict(size=(128, 128)),  # the crop size
    backbone=dict(
        depth=18,
        stem_channels=64,  # deep stem: 32, 32, 64 channels
        base_channels=32,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    decode_head=dict(
        in_channels=256,
        channels=64,
        dilations=(1, 2, 4, 6),
        num_classes=num_classes),
    auxiliary_head=dict(
        in_channels=128,
        channels=32,
        num_classes=num_classes))
