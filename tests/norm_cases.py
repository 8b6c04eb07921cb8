"""Every mmbcn norm layer (and each BCN mode) as a test case, shared by the
layer-mode tests and the peer-suite tests: ``NORMS`` maps a case id to the
mmcv ``norm_cfg`` that builds it."""
import torch

NORMS = {
    'bcn-micro': dict(type='BCN', num_groups=4),
    'bcn-large': dict(type='BCN', num_groups=4, mode='large'),
    'bcn-deferred': dict(type='BCN', num_groups=4, sync='deferred'),
    'bcn-channel': dict(type='BCN', num_groups=4, affine='channel'),
    'evonorm-b0': dict(type='EvoNormB0'),
    'evonorm-s0': dict(type='EvoNormS0', num_groups=4),
    'affine': dict(type='ChannelAffine'),
    # the normalization zoo (small windows, so that the tests reach the
    # moving-average / pooling / renormalization paths in a few steps)
    'frn': dict(type='FRN'),
    'brn': dict(type='BatchRenorm', momentum=0.1, r_max=1.5, d_max=0.5),
    'mabn': dict(type='MABN', buffer_size=2, warmup_iters=0,
                 renorm_iters=1),
    # compensate=True (default) in a model without CBNLinkHook: the
    # BatchNorm fallback; compensate=False pools from the first step
    'cbn': dict(type='CrossIterationBN', buffer_num=2),
    'cbn-pool': dict(type='CrossIterationBN', buffer_num=2,
                     compensate=False),
}
#: the norms with estimated statistics (buffers that move in training)
ESTIMATING = ('bcn-micro', 'bcn-large', 'bcn-deferred', 'bcn-channel',
              'evonorm-b0', 'brn', 'mabn', 'cbn', 'cbn-pool')
#: the norms that normalize with statistics of the current batch: in
#: training they refuse one value per channel as BatchNorm does
BATCH_STATS = frozenset({'bcn-large', 'brn', 'cbn', 'cbn-pool'})
#: the norms that are torch ``_BatchNorm`` subclasses (their eval form is
#: BatchNorm's): mmcv's fuse_conv_bn folds them, mmengine's paramwise rules
#: already see them, the SyncBatchNorm converters refuse them
BATCHNORMS = frozenset({'brn', 'cbn', 'cbn-pool'})


def build_norm(case: str, channels: int, seed: int = 0) -> torch.nn.Module:
    """The ``case`` norm on ``channels`` channels with random parameters
    (so that no gradient is trivially zero)."""
    from mmcv.cnn import build_norm_layer
    import mmbcn  # noqa: F401 (registers the layers)
    cfg = dict(NORMS[case])
    if case.startswith('bcn'):
        cfg['update_rate'] = 0.3
    layer = build_norm_layer(cfg, channels)[1]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return layer
