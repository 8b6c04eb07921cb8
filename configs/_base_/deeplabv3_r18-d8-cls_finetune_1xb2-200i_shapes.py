# The small DeepLabV3 on the built-in shapes data fine-tuned from the
# ResNet-18 pretrained on the built-in classification task (configs/pretrain/
# resnet18_*_shapes-cls.py, the Mask R-CNN's backbone too), 200 iterations:
# mmseg's settings for a pretrained backbone (every layer trained, as mmseg's
# DeepLabV3 configs) and otherwise the from-scratch recipe, at a fifth of its
# length. The one difference from the from-scratch model is the stem: that
# pretrained ResNet-18's 7x7 conv of 32 channels (mmseg's ResNet, the keys of
# mmdet's) in place of ResNetV1c's deep stem of 32, 32, 64 channels. The leaves in
# configs/shapes/finetune/ write out the scheme's layers and the checkpoint
# (tools/reproduce.py gives each seed its own).
_base_ = './deeplabv3_r18-d8_1xb2-1000i_shapes.py'

max_iters = 200
warmup_iters = 20
model = dict(
    backbone=dict(
        type='ResNet',  # mmseg's: deep_stem=False, the 7x7 stem
        stem_channels=32,
        init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                      checkpoint=None)))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='PolyLR', power=0.9, eta_min=0, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
