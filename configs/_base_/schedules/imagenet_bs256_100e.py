# ImageNet ResNet recipe: 100 epochs, SGD lr 0.1 for a total batch of 256
# (8 GPUs x 32 images), momentum 0.9, weight decay 1e-4, lr / 10 at epochs
# 30, 60 and 90; validation every epoch.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
# --auto-scale-lr rescales the lr linearly for another total batch
auto_scale_lr = dict(enable=False, base_batch_size=256)
