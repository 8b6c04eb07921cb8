"""Scaled WS, EvoNorm-B0/S0 and ChannelAffine against plain references."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer

from mmbcn.models.layers import (RELU_GAMMA, ChannelAffine, EvoNormB0,
                                 EvoNormS0, ScaledWSConv2d)


def ref_scaled_ws(weight, gain, gamma, eps):
    w = weight.reshape(weight.shape[0], -1)
    mean = w.mean(1, keepdim=True)
    var = ((w - mean) ** 2).mean(1, keepdim=True)
    w_hat = (w - mean) / (torch.sqrt(var + eps) * math.sqrt(w.shape[1]))
    return (gamma * gain[:, None] * w_hat).reshape(weight.shape)


def ref_evonorm_b0(x, var_b, v, gamma, beta, eps):
    shape = (1, -1, 1, 1)
    var_i = x.var((2, 3), unbiased=False, keepdim=True)
    denom = torch.maximum(torch.sqrt(var_b.view(shape) + eps),
                          v.view(shape) * x + torch.sqrt(var_i + eps))
    return x / denom * gamma.view(shape) + beta.view(shape)


def ref_evonorm_s0(x, v, gamma, beta, groups, eps):
    n, c, h, w = x.shape
    shape = (1, -1, 1, 1)
    xg = x.reshape(n, groups, -1)
    std = torch.sqrt(xg.var(2, unbiased=False, keepdim=True) + eps)
    std = std.expand(n, groups, c // groups * h * w).reshape(x.shape)
    return x * torch.sigmoid(v.view(shape) * x) / std * gamma.view(shape) + \
        beta.view(shape)


def randomize(module):
    torch.manual_seed(5)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(0.5, 1.5)
    return module


def test_relu_gamma_keeps_unit_second_moment():
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))
    assert (F.relu(z) * RELU_GAMMA).std().item() == pytest.approx(1, 1e-2)


def test_scaled_ws_matches_reference():
    conv = randomize(ScaledWSConv2d(6, 4, 3, padding=1, groups=2))
    x = torch.randn(2, 6, 7, 7)
    w_hat = ref_scaled_ws(conv.weight, conv.gain, RELU_GAMMA, 1e-5)
    torch.testing.assert_close(conv.standardized_weight(), w_hat)
    torch.testing.assert_close(
        conv(x), F.conv2d(x, w_hat, conv.bias, padding=1, groups=2),
        rtol=1e-4, atol=1e-5)


def test_scaled_ws_preserves_variance():
    torch.manual_seed(0)
    conv = ScaledWSConv2d(256, 256, 3, padding=1, gamma=1.0, bias=False)
    y = conv(torch.randn(4, 256, 16, 16))
    assert y[:, :, 1:-1, 1:-1].var().item() == pytest.approx(1, rel=0.1)


def test_evonorm_b0_train_eval():
    layer = randomize(EvoNormB0(8, momentum=0.2))
    x = torch.randn(3, 8, 5, 5) * 2
    y = layer(x)
    var_b = x.var((0, 2, 3), unbiased=False)
    torch.testing.assert_close(
        y, ref_evonorm_b0(x, var_b, layer.v, layer.weight, layer.bias, 1e-5),
        rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layer.running_var,
                               0.8 + 0.2 * x.var((0, 2, 3), unbiased=True))
    layer.eval()
    x2 = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(
        layer(x2), ref_evonorm_b0(x2, layer.running_var, layer.v,
                                  layer.weight, layer.bias, 1e-5))
    assert layer.num_batches_tracked.item() == 1


def test_evonorm_s0():
    layer = randomize(EvoNormS0(8, num_groups=4))
    x = torch.randn(2, 8, 5, 5) * 3
    torch.testing.assert_close(
        layer(x), ref_evonorm_s0(x, layer.v, layer.weight, layer.bias, 4,
                                 1e-5), rtol=1e-4, atol=1e-5)


def test_channel_affine():
    layer = randomize(ChannelAffine(4))
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(
        layer(x), x * layer.weight[:, None] + layer.bias[:, None])


@pytest.mark.parametrize('make', [
    lambda: ScaledWSConv2d(3, 4, 3, padding=1),
    lambda: EvoNormB0(4),
    lambda: EvoNormB0(4).eval(),
    lambda: EvoNormS0(4, num_groups=2),
    lambda: ChannelAffine(4),
])
def test_gradcheck_float64(make):
    module = randomize(make()).double()
    channels = 3 if isinstance(module, ScaledWSConv2d) else 4
    x = torch.randn(2, channels, 4, 4, dtype=torch.float64,
                    requires_grad=True)
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True)
              for p in module.parameters()]

    def fn(inp, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps)),
                                          (inp, ))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)


def test_build_through_mmcv():
    name, layer = build_norm_layer(dict(type='EvoNormS0', num_groups=8), 32)
    assert name == 'evonorm' and isinstance(layer, EvoNormS0)
    name, layer = build_norm_layer(dict(type='ChannelAffine'), 16, postfix=2)
    assert name == 'affine2'
    module = ConvModule(3, 8, 3, padding=1,
                        conv_cfg=dict(type='ScaledWSConv2d'),
                        norm_cfg=dict(type='EvoNormB0'))
    assert module(torch.randn(2, 3, 5, 5)).shape == (2, 8, 5, 5)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r'num_groups=3 does not divide'):
        EvoNormS0(8, num_groups=3)
    with pytest.raises(ValueError, match='momentum=0'):
        EvoNormB0(8, momentum=0)
    with pytest.raises(ValueError, match='gamma=0'):
        ScaledWSConv2d(3, 4, 3, gamma=0)
    with pytest.raises(ValueError, match=r'expected \(N, 8, \*\)'):
        EvoNormB0(8)(torch.randn(2, 4, 3))
