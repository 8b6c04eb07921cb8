"""Batch Renormalization against the paper's formulas."""
import copy

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.utils import fuse_conv_bn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from mmbcn.engine.hooks import BatchRenormScheduleHook
from mmbcn.models.layers import MMBCN_NORM_TYPES, BatchRenorm
from norm_checks import (assert_empty_batch, assert_eval_keeps_buffers,
                         assert_keeps_channels_last, assert_state_round_trip,
                         randomize)
from tiny_runner import TinyNet, make_runner


class RefBRN:
    """The paper's training step, written out per channel (running
    variance moved as BatchNorm's; see the layer's docstring)."""

    def __init__(self, c, eps, momentum, r_max, d_max):
        self.mean, self.var = torch.zeros(c), torch.ones(c)
        self.eps, self.momentum = eps, momentum
        self.r_max, self.d_max = r_max, d_max

    def step(self, x, gamma, beta):
        y = torch.empty_like(x)
        for j in range(x.shape[1]):
            v = x[:, j]
            m = v.numel()
            mu = v.sum() / m
            var = ((v - mu) ** 2).sum() / m
            sigma_b = torch.sqrt(var + self.eps)
            sigma = torch.sqrt(self.var[j] + self.eps)
            r = min(max(float(sigma_b / sigma), 1 / self.r_max), self.r_max)
            d = min(max(float((mu - self.mean[j]) / sigma), -self.d_max),
                    self.d_max)
            y[:, j] = gamma[j] * ((v - mu) / sigma_b * r + d) + beta[j]
            self.mean[j] += self.momentum * (mu - self.mean[j])
            self.var[j] += self.momentum * (var * m / (m - 1) - self.var[j])
        return y


def test_training_steps_match_reference():
    layer = randomize(BatchRenorm(4, momentum=0.2, r_max=1.2, d_max=0.3))
    ref = RefBRN(4, 1e-5, 0.2, 1.2, 0.3)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.randn(2, 4, 3, 3, generator=g) * 3 + 2
        torch.testing.assert_close(
            layer(x), ref.step(x, layer.weight.detach(), layer.bias.detach()))
        torch.testing.assert_close(layer.running_mean, ref.mean)
        torch.testing.assert_close(layer.running_var, ref.var)
    assert int(layer.num_batches_tracked) == 4
    # eval: BatchNorm's eval with the running statistics
    layer.eval()
    x = torch.randn(2, 4, 3, 3)
    expected = (x - ref.mean.view(1, -1, 1, 1)) / torch.sqrt(
        ref.var.view(1, -1, 1, 1) + 1e-5) * layer.weight.view(1, -1, 1, 1) \
        + layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected)


def test_clips_one_and_zero_are_batchnorm():
    layer = randomize(BatchRenorm(4, momentum=0.1, r_max=1, d_max=0))
    bn = nn.BatchNorm2d(4, momentum=0.1)
    bn.load_state_dict(layer.state_dict(), strict=False)
    for _ in range(3):
        x = (torch.randn(2, 4, 3, 3) * 2 + 1).requires_grad_(True)
        x2 = x.detach().clone().requires_grad_(True)
        g = torch.randn(2, 4, 3, 3)
        (layer(x) * g).sum().backward()
        (bn(x2) * g).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.weight.grad, bn.weight.grad)
    torch.testing.assert_close(layer.running_mean, bn.running_mean)
    torch.testing.assert_close(layer.running_var, bn.running_var)


def _gradcheck(layer):
    layer = layer.double()
    names = [n for n, _ in layer.named_parameters()]
    buffers = {n: b for n, b in layer.named_buffers()}

    def f(x, *params):
        # fresh copies of the buffers: every call sees the same state
        state = {n: b.clone() for n, b in buffers.items()}
        state.update(zip(names, params))
        return functional_call(layer, state, (x, ))

    x = torch.randn(2, 3, 2, 2, dtype=torch.float64) * 2 + 1
    inputs = (x.requires_grad_(True),
              *[p.detach().clone().requires_grad_(True)
                for p in layer.parameters()])
    assert torch.autograd.gradcheck(f, inputs)


def test_gradcheck_with_clipped_corrections():
    """r, d are constants of the backward pass: checked where both clip
    (so they are locally constant and the numeric gradient agrees)."""
    layer = randomize(BatchRenorm(3, r_max=2.0, d_max=1.0))
    layer.running_var.fill_(1e-3)  # r = sigma_B / sigma >> r_max
    layer.running_mean.fill_(-50.)  # d >> d_max
    _gradcheck(layer)


def test_gradcheck_as_batchnorm():
    _gradcheck(randomize(BatchRenorm(3, r_max=1, d_max=0)))


def test_contracts_and_round_trip():
    layer = randomize(BatchRenorm(4))
    before = layer.running_mean.clone()
    assert_empty_batch(layer, (2, 4, 3, 3))
    torch.testing.assert_close(layer.running_mean, before)  # no update
    assert int(layer.num_batches_tracked) == 0
    assert_keeps_channels_last(layer.eval(), (2, 4, 3, 3))
    layer.train()
    x = torch.randn(2, 4, 3, 3) * 2 + 1
    layer(x)
    layer.set_clips(2.5, 1.5)
    assert_eval_keeps_buffers(layer, x)
    fresh = BatchRenorm(4)
    assert_state_round_trip(layer, fresh, x)
    assert float(fresh.r_max) == 2.5 and float(fresh.d_max) == 1.5


def test_training_keeps_channels_last():
    layer = randomize(BatchRenorm(4))
    twin = copy.deepcopy(layer)
    x = torch.randn(2, 4, 3, 3)
    y = layer(x.to(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, twin(x))


def test_eval_folds_with_mmcv_fuse_conv_bn():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False),
                          randomize(BatchRenorm(4)))
    for _ in range(3):
        model(torch.randn(2, 3, 5, 5) * 2 + 1)
    model.eval()
    x = torch.randn(2, 3, 5, 5)
    expected = model(x)
    fused = fuse_conv_bn(copy.deepcopy(model))
    assert not any(isinstance(m, BatchRenorm) for m in fused.modules())
    torch.testing.assert_close(fused(x), expected)


def test_build_norm_layer_and_batchnorm_identity():
    assert BatchRenorm in MMBCN_NORM_TYPES
    name, layer = build_norm_layer(dict(type='BatchRenorm', momentum=0.05),
                                   8, postfix=2)
    assert name == 'brn2' and layer.momentum == 0.05
    assert isinstance(layer, _BatchNorm)  # norm_eval and decay rules apply


def test_schedule_hook_values_and_runner(tmp_path):
    hook = BatchRenormScheduleHook(r_max=3, d_max=5, start_iter=2,
                                   r_max_iter=6, d_max_iter=4)
    assert [hook.clips_at(i) for i in (0, 2, 3, 4, 6, 9)] == [
        (1, 0), (1, 0), (1.5, 2.5), (2, 5), (3, 5), (3, 5)]

    class BRNNet(TinyNet):

        def __init__(self, cfg=None):
            super().__init__()
            self.norm = BatchRenorm(16)

    cfg = dict(type='BatchRenormScheduleHook', r_max=3, d_max=5,
               start_iter=0, r_max_iter=4, d_max_iter=2)
    runner = make_runner(tmp_path, 3, custom_hooks=[cfg], net=BRNNet)
    runner.train()
    # the hook ran before iteration 2 (0-based): r_max 2, d_max 5
    assert float(runner.model.norm.r_max) == pytest.approx(2.0)
    assert float(runner.model.norm.d_max) == pytest.approx(5.0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_features=0), 'num_features=0'),
    (dict(num_features=4, eps=-1), 'eps=-1'),
    (dict(num_features=4, momentum=0), 'momentum=0'),
    (dict(num_features=4, momentum=None), 'momentum=None'),
    (dict(num_features=4, r_max=0.5), 'r_max=0.5'),
    (dict(num_features=4, d_max=-1), 'd_max=-1'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchRenorm(**kwargs)


def test_bad_hook_arguments():
    with pytest.raises(ValueError, match='r_max_iter=1'):
        BatchRenormScheduleHook(start_iter=2, r_max_iter=1)
    with pytest.raises(ValueError, match='d_max=-2'):
        BatchRenormScheduleHook(d_max=-2)
