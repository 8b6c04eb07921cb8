# Small Swin Mask R-CNN on the built-in shapes data, for the LayerNorm /
# PRepBN comparison (configs/swin/): the R-18 shapes base
# (mask-rcnn_r18_fpn_1xb2-300i_shapes.py: 128x128 data, 64-channel FPN and
# heads, 300 iterations, runtime, seed 0, PeakMemoryHook and
# SingularityHook) with the ResNet-18 replaced by a narrow SwinTransformer
# that costs about as much on a CPU: 32 embedding dims, depths (1, 1, 2, 1),
# 1-2-4-8 heads (8 channels per head), 4x4 windows (patch 4: 32x32 tokens,
# then 16, 8 and 4, each a whole number of windows, no padding; the last
# stage is one window), from scratch. LayerNorm (mmdet's
# norm_cfg=dict(type='LN')) in every norm of the transformer; the leaves
# in configs/swin/ write theirs.
#
# Optimizer: AdamW, as mmdet's Swin configs (and SLAB) train Swin, with
# their paramwise_cfg (no weight decay on the position-bias tables and on
# every parameter named *norm*: LayerNorm's and PRepBN's alike, so LN and
# PRepBN get the same regularization), not the shapes SGD. lr 1e-3
# (mmdet's 1e-4 is for fine-tuning ImageNet weights at 16 images; this
# trains from scratch for 300 iterations), with the shapes schedule's
# warm-up, polynomial decay and gradient clipping. The same for both
# leaves.
_base_ = './mask-rcnn_r18_fpn_1xb2-300i_shapes.py'

embed_dims = 32
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=128,
        embed_dims=embed_dims,
        depths=(1, 1, 2, 1),
        num_heads=(1, 2, 4, 8),
        window_size=4,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.1,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=False,
        norm_cfg=dict(type='LN'),
        init_cfg=None),  # from scratch
    neck=dict(in_channels=[32, 64, 128, 256]))

optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.001,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
