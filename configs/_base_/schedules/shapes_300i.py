# 300 iterations for the shapes configs: SGD (lr for 1 GPU x 2 images),
# linear warm-up, polynomial decay, one validation at the end.
max_iters = 300
warmup_iters = 50

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
        type='PolyLR',
        power=0.9,
        eta_min=0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
# One GPU (or CPU process) x 2 images.
auto_scale_lr = dict(enable=False, base_batch_size=2)
