"""MABN and weight centralization against the paper's formulas."""
import copy

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmcv.cnn.utils import fuse_conv_bn
from torch.func import functional_call

from mmbcn.models.layers import MABN, MMBCN_NORM_TYPES, CenteredConv2d
from norm_checks import (assert_empty_batch, assert_eval_keeps_buffers,
                         assert_keeps_channels_last, assert_state_round_trip,
                         randomize)


class RefMABN:
    """Forward and hand-written backward of the module docstring, keeping
    the histories of chi_B and psi_B in lists."""

    def __init__(self, c, m, warmup, renorm, r_max, eps, momentum):
        self.m, self.warmup, self.renorm = m, warmup, renorm
        self.r_max, self.eps, self.momentum = r_max, eps, momentum
        self.running_var = torch.ones(c)
        self.chis, self.psis, self.t = [], [], 0

    def step(self, x, dy, gamma, beta):
        self.t += 1
        moving = self.t > max(self.m, self.warmup)
        cs = (1, -1, 1, 1)
        chi_b = (x * x).mean((0, 2, 3))
        self.chis.append(chi_b)
        chi = torch.stack(self.chis[-self.m:]).mean(0) if moving else chi_b
        std = torch.sqrt(chi + self.eps)
        r = torch.ones_like(std)
        if self.t > self.renorm:
            r = torch.clamp(std / torch.sqrt(self.running_var + self.eps),
                            1 / self.r_max, self.r_max)
        self.running_var = (1 - self.momentum) * self.running_var + \
            self.momentum * chi
        z = x / std.view(cs)
        y = gamma.view(cs) * r.view(cs) * z + beta.view(cs)
        g = dy * (gamma * r).view(cs)
        psi_b = (g * z).mean((0, 2, 3))
        self.psis.append(psi_b)
        psi = torch.stack(self.psis[-self.m:]).mean(0) if moving else psi_b
        dx = (g - z * psi.view(cs)) / std.view(cs)
        d_gamma = (dy * r.view(cs) * z).sum((0, 2, 3))
        return y, dx, d_gamma, dy.sum((0, 2, 3))


def test_steps_match_reference_through_every_phase():
    # warm-up for steps 1-3, moving averages after; r from step 5 on
    layer = randomize(MABN(4, buffer_size=2, warmup_iters=3, renorm_iters=4,
                           r_max=1.05, momentum=0.3))
    ref = RefMABN(4, 2, 3, 4, 1.05, 1e-5, 0.3)
    g = torch.Generator().manual_seed(0)
    for _ in range(7):
        x = (torch.randn(2, 4, 3, 3, generator=g) * 2).requires_grad_(True)
        dy = torch.randn(2, 4, 3, 3, generator=g)
        layer.weight.grad = layer.bias.grad = None
        y = layer(x)
        y.backward(dy)
        ry, rdx, rdw, rdb = ref.step(x.detach(), dy, layer.weight.detach(),
                                     layer.bias.detach())
        torch.testing.assert_close(y, ry)
        torch.testing.assert_close(x.grad, rdx)
        torch.testing.assert_close(layer.weight.grad, rdw)
        torch.testing.assert_close(layer.bias.grad, rdb)
        torch.testing.assert_close(layer.running_var, ref.running_var)
    assert int(layer.num_batches_tracked) == 7


def test_gradcheck_in_warmup_is_the_exact_gradient():
    layer = randomize(MABN(3, warmup_iters=5)).double()
    names = [n for n, _ in layer.named_parameters()]
    buffers = dict(layer.named_buffers())

    def f(x, *params):
        state = {n: b.clone() for n, b in buffers.items()}
        state.update(zip(names, params))
        return functional_call(layer, state, (x, ))

    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True)
              for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, *params))


def test_eval_and_contracts():
    layer = randomize(MABN(4, buffer_size=2, warmup_iters=0))
    assert_empty_batch(layer, (2, 4, 3, 3))
    assert int(layer.num_batches_tracked) == 0
    assert_keeps_channels_last(copy.deepcopy(layer), (2, 4, 3, 3))
    for _ in range(4):
        layer(torch.randn(2, 4, 3, 3) * 2).sum().backward()
    x = torch.randn(2, 4, 3, 3)
    layer.eval()
    expected = layer.weight.view(1, -1, 1, 1) * x / torch.sqrt(
        layer.running_var.view(1, -1, 1, 1) + 1e-5) + \
        layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert_keeps_channels_last(layer, (2, 4, 3, 3))
    assert_eval_keeps_buffers(layer, x)
    assert layer.buffer_gz.abs().sum() > 0 and layer.buffer_x2.sum() > 0
    assert_state_round_trip(layer, MABN(4, buffer_size=2), x)


def test_reset_running_stats():
    layer = MABN(4, buffer_size=2, warmup_iters=0)
    fresh = copy.deepcopy(layer)
    for _ in range(3):
        layer(torch.randn(2, 4, 3, 3)).sum().backward()
    layer.reset_running_stats()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(layer.state_dict()[k], v, msg=k)


def test_training_keeps_channels_last():
    layer = randomize(MABN(4))
    twin = copy.deepcopy(layer)
    x = torch.randn(2, 4, 3, 3)
    y = layer(x.to(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, twin(x))


def test_centered_conv_and_folding():
    torch.manual_seed(0)
    conv = CenteredConv2d(3, 4, 3, padding=1, bias=False)
    w = conv.weight.detach()
    centered = w - w.reshape(4, -1).mean(1).view(4, 1, 1, 1)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(
        conv(x), torch.nn.functional.conv2d(x, centered, padding=1))
    # a centered filter maps a constant input to zero (away from padding)
    const = conv(torch.full((1, 3, 5, 5), 2.0))[:, :, 1:-1, 1:-1]
    torch.testing.assert_close(const, torch.zeros_like(const))
    norm = randomize(MABN(4, buffer_size=2, warmup_iters=0))
    model = nn.Sequential(conv, norm)
    for _ in range(3):
        model(torch.randn(2, 3, 5, 5)).sum().backward()
    model.eval()
    expected = model(x)
    plain = nn.Sequential(conv.to_conv(), norm.to_batchnorm())
    assert type(plain[0]) is nn.Conv2d
    torch.testing.assert_close(plain(x), expected)
    fused = fuse_conv_bn(plain)
    assert isinstance(fused[1], nn.Identity)
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)


def test_registered_and_built_by_mmcv():
    assert MABN in MMBCN_NORM_TYPES
    name, norm = build_norm_layer(dict(type='MABN', buffer_size=4), 8, 1)
    assert name == 'mabn1' and norm.buffer_x2.shape == (4, 8)
    conv = build_conv_layer(dict(type='CenteredConv2d'), 3, 8, 3)
    assert isinstance(conv, CenteredConv2d)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_features=0), 'num_features=0'),
    (dict(num_features=4, eps=0), 'eps=0'),
    (dict(num_features=4, momentum=1.5), 'momentum=1.5'),
    (dict(num_features=4, buffer_size=0), 'buffer_size=0'),
    (dict(num_features=4, warmup_iters=-1), 'warmup_iters=-1'),
    (dict(num_features=4, renorm_iters=2.5), 'renorm_iters=2.5'),
    (dict(num_features=4, r_max=0.9), 'r_max=0.9'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MABN(**kwargs)
