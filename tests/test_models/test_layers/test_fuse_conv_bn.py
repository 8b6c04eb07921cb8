"""mmcv's fuse_conv_bn on WS convs followed by BatchNorm gives the fused
model's exact output (the unfused model in eval mode as the reference),
and leaves the WS convs' training and loading behaviour as it was."""
import copy

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn
from mmengine.registry import init_default_scope

import mmbcn  # noqa: F401 (registers the layers)
from mmbcn.models.layers import ScaledWSConv2d, WSConv2d

CONVS = {
    'ws': lambda: WSConv2d(3, 8, 3, padding=1),
    'ws-std-bias': lambda: WSConv2d(3, 8, 3, bias=True, eps_mode='std'),
    'scaled-ws': lambda: ScaledWSConv2d(3, 8, 3, gain_init=0.6),
}


def random_bn(bn, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(bn.num_features, generator=gen))
        bn.bias.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + .5)
    return bn


def assert_rel_close(got, expected, tol=1e-5):
    err = (got - expected).abs().max() / expected.abs().max()
    assert err <= tol, float(err)


@pytest.mark.parametrize('conv', sorted(CONVS))
def test_fuse_conv_bn_pair(conv):
    torch.manual_seed(0)
    model = nn.Sequential(CONVS[conv](), random_bn(nn.BatchNorm2d(8)),
                          nn.ReLU()).eval()
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    fused = fuse_conv_bn(copy.deepcopy(model))
    assert isinstance(fused[1], nn.Identity)
    assert fused[0].ws_folded
    assert_rel_close(fused(x), expected)
    # the folded conv is a plain conv with its weight: scripts, and gives
    # the same output as a torch Conv2d holding that weight
    plain = nn.Conv2d(3, 8, 3, padding=fused[0].padding)
    plain.weight, plain.bias = fused[0].weight, fused[0].bias
    torch.testing.assert_close(fused[0](x), plain(x))
    torch.testing.assert_close(torch.jit.script(fused)(x), fused(x))


def test_fuse_conv_bn_mmdet_resnet():
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ResNet', depth=18, num_stages=2, out_indices=(0, 1),
        strides=(1, 2), dilations=(1, 1), base_channels=8,
        conv_cfg=dict(type='WSConv2d'),
        norm_cfg=dict(type='BN', requires_grad=True)))
    for i, m in enumerate(model.modules()):
        if isinstance(m, nn.BatchNorm2d):
            random_bn(m, seed=i)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    fused = fuse_conv_bn(copy.deepcopy(model))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    ws = [m for m in fused.modules() if isinstance(m, WSConv2d)]
    assert ws and all(m.ws_folded for m in ws)
    for got, want in zip(fused(x), expected):
        assert_rel_close(got, want)


@pytest.mark.parametrize('conv', sorted(CONVS))
def test_other_assignments_and_loading_unchanged(conv):
    torch.manual_seed(0)
    layer = CONVS[conv]()
    assert not layer.ws_folded
    x = torch.randn(2, 3, 9, 9)
    # load_state_dict copies in place: still standardized
    other = CONVS[conv]()
    other.load_state_dict(layer.state_dict())
    assert not other.ws_folded
    torch.testing.assert_close(other(x), layer(x))
    # a weight that is no per-filter rescaling, the same weight, factors 1
    for value in (nn.Parameter(torch.randn_like(layer.weight)),
                  nn.Parameter(layer.weight.detach().clone()),
                  layer.weight):
        layer.weight = value
        assert not layer.ws_folded
        assert layer.weight is value
    # still standardized, gradients flow
    out = layer(x)
    w_hat = layer.standardized_weight()
    assert not torch.equal(w_hat, layer.weight)
    torch.testing.assert_close(out, nn.functional.conv2d(
        x, w_hat, layer.bias, layer.stride, layer.padding))
    out.sum().backward()
    assert layer.weight.grad is not None
