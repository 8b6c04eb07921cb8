# 300 iterations of the built-in classification task (4.8 epochs of 2000
# images at 1 process x 32 images): SGD, linear warm-up, cosine decay, one
# validation at the end.
max_iters = 300
warmup_iters = 20

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
# The lr is for a total batch of 32; --auto-scale-lr rescales it linearly.
auto_scale_lr = dict(enable=False, base_batch_size=32)
