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
}
#: the norms with estimated statistics (buffers that move in training)
ESTIMATING = ('bcn-micro', 'bcn-large', 'bcn-deferred', 'bcn-channel',
              'evonorm-b0')


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
