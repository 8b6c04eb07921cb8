"""Cross-Iteration BN against the paper's formulas, with the Taylor terms
computed independently from the unfolded conv input."""
import copy
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.utils import fuse_conv_bn
from torch.func import functional_call

from mmbcn.engine.hooks import CBNLinkHook
from mmbcn.models.layers import (MMBCN_NORM_TYPES, CrossIterationBN,
                                 WSConv2d, link_cbn_convs)
from norm_checks import (assert_eval_keeps_buffers, assert_keeps_channels_last,
                         assert_state_round_trip, randomize)
from tiny_runner import TinyNet, make_runner


class RefCBN:
    """The paper's step for a 3x3, padding-1 conv, history newest first."""

    def __init__(self, k, burnin, compensate=True, eps=1e-5, momentum=0.1):
        self.k, self.burnin, self.compensate = k, burnin, compensate
        self.eps, self.momentum = eps, momentum
        self.history, self.t = [], 0
        self.running_mean = self.running_var = None

    def step(self, u, weight, gamma, beta):
        self.t += 1
        c = weight.shape[0]
        x = F.conv2d(u, weight, padding=1)
        patches = F.unfold(u.detach(), 3, padding=1)  # (N, D, L)
        w = weight.detach().clone().reshape(c, -1)
        y_flat = torch.einsum('cd,ndl->ncl', w, patches)
        mu, nu = x.mean((0, 2, 3)), x.square().mean((0, 2, 3))
        n_items = x.numel() // c
        if self.t > self.burnin and self.k:
            means, sqs = [mu], [nu]
            for mu_s, nu_s, g_s, h_s, w_s in self.history:
                if self.compensate:
                    mu_s = mu_s + (g_s * (w - w_s)).sum(1)
                    nu_s = nu_s + (h_s * (w - w_s)).sum(1)
                means.append(mu_s)
                sqs.append(torch.maximum(nu_s, mu_s ** 2))
            g = patches.mean((0, 2)).expand(c, -1)          # d mu / d W
            h = 2 * torch.einsum('ncl,ndl->cd', y_flat, patches) / n_items
            self.history = [(mu.detach(), nu.detach(), g, h, w)] + \
                self.history[:self.k - 1]
            mean = sum(means) / len(means)
            sq = sum(sqs) / len(sqs)
            count = n_items * len(means)
        else:
            mean, sq, count = mu, nu, n_items
        var = torch.clamp(sq - mean ** 2, min=0)
        cs = (1, -1, 1, 1)
        out = gamma.view(cs) * (x - mean.view(cs)) / torch.sqrt(
            var.view(cs) + self.eps) + beta.view(cs)
        rm = torch.zeros(c) if self.running_mean is None else \
            self.running_mean
        rv = torch.ones(c) if self.running_var is None else self.running_var
        self.running_mean = rm + self.momentum * (mean.detach() - rm)
        self.running_var = rv + self.momentum * (
            var.detach() * count / (count - 1) - rv)
        return out


def make_pair(k=2, burnin=1, compensate=True, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    norm = randomize(CrossIterationBN(4, buffer_num=k, burnin_iters=burnin,
                                      compensate=compensate))
    model = nn.Sequential(conv, norm)
    link_cbn_convs(model)
    return model


@pytest.mark.parametrize('compensate', [True, False])
def test_training_steps_match_reference(compensate):
    model = make_pair(k=2, burnin=2, compensate=compensate)
    conv, norm = model
    ref = RefCBN(2, 2, compensate)
    ref_weight = conv.weight.detach().clone().requires_grad_(True)
    g = torch.Generator().manual_seed(3)
    for _ in range(6):
        u = torch.randn(2, 3, 5, 5, generator=g)
        u1, u2 = u.clone().requires_grad_(True), u.clone().requires_grad_(True)
        dy = torch.randn(2, 4, 5, 5, generator=g)
        conv.weight.grad = None
        y = model(u1)
        y.backward(dy)
        ry = ref.step(u2, ref_weight, norm.weight.detach(),
                      norm.bias.detach())
        ry.backward(dy)
        torch.testing.assert_close(y, ry)
        torch.testing.assert_close(u1.grad, u2.grad)
        torch.testing.assert_close(conv.weight.grad, ref_weight.grad)
        torch.testing.assert_close(norm.running_mean, ref.running_mean)
        torch.testing.assert_close(norm.running_var, ref.running_var)
        with torch.no_grad():  # an SGD step: the weight changes
            conv.weight -= 0.3 * conv.weight.grad
            ref_weight -= 0.3 * ref_weight.grad
        ref_weight.grad = None
    assert int(norm.hist_count) == 2


def test_mean_compensation_is_exact_for_a_conv():
    """mu is linear in W: the compensated past mean equals the mean of the
    old input under the new weight; nu is off by O(|dW|^2)."""
    model = make_pair(k=1, burnin=0)
    conv, norm = model
    u_old = torch.randn(2, 3, 5, 5)
    model(u_old)
    with torch.no_grad():
        conv.weight.add_(torch.randn_like(conv.weight) * 1e-3)
    mean, sq = norm._past_moments(conv.weight)
    x_new = F.conv2d(u_old, conv.weight.detach(), padding=1)
    torch.testing.assert_close(mean[0], x_new.mean((0, 2, 3)))
    exact_sq = x_new.square().mean((0, 2, 3))
    stale_sq = norm.hist_sq[0]
    assert (sq[0] - exact_sq).abs().max() < \
        0.1 * (stale_sq - exact_sq).abs().max()


def test_compensation_through_weight_standardization():
    conv = WSConv2d(3, 4, 3, padding=1, bias=False)
    norm = CrossIterationBN(4, buffer_num=1)
    model = nn.Sequential(conv, norm)
    link_cbn_convs(model)
    u_old = torch.randn(2, 3, 5, 5)
    model(u_old)
    with torch.no_grad():
        conv.weight.add_(torch.randn_like(conv.weight) * 1e-3)
    mean, _ = norm._past_moments(conv.weight)
    with torch.no_grad():
        x_new = conv(u_old)
    # first order through the standardization: error O(|dW|^2)
    torch.testing.assert_close(mean[0], x_new.mean((0, 2, 3)), atol=1e-5,
                               rtol=1e-4)


def _gradcheck(model, steps_before):
    model = model.double()
    for _ in range(steps_before):
        model(torch.randn(2, 3, 4, 4, dtype=torch.float64))
    conv, norm = model
    names = [n for n, _ in norm.named_parameters()]
    buffers = dict(norm.named_buffers())

    def f(u, *params):
        state = {n: b.clone() for n, b in buffers.items()}
        state.update(zip(names, params))
        return functional_call(norm, state, (conv(u), ))

    u = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True)
              for p in norm.parameters()]
    assert torch.autograd.gradcheck(f, (u, *params))


def test_gradcheck_burnin_and_pooling():
    _gradcheck(make_pair(k=2, burnin=5), 1)   # BatchNorm
    _gradcheck(make_pair(k=2, burnin=0), 3)   # pooled, full window


def test_burnin_is_batchnorm():
    model = make_pair(k=3, burnin=3)
    bn = nn.BatchNorm2d(4)
    bn.load_state_dict(model[1].state_dict(), strict=False)
    for _ in range(3):
        u = torch.randn(2, 3, 5, 5)
        torch.testing.assert_close(model(u), bn(model[0](u)))
    torch.testing.assert_close(model[1].running_var, bn.running_var)
    assert int(model[1].hist_count) == 0


def test_unlinked_layer_is_batchnorm_with_one_warning(monkeypatch):
    """A model built without CBNLinkHook (mmdet's / mmseg's own tools) runs:
    CBN(compensate=True) is then BatchNorm (its burn-in), warned once."""
    import mmbcn.models.layers.cross_iteration_bn as cbn_module
    logged = []
    monkeypatch.setattr(cbn_module, '_unlinked_warned', False)
    monkeypatch.setattr(cbn_module, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    norms = [randomize(CrossIterationBN(4, buffer_num=2)) for _ in range(2)]
    bns = [nn.BatchNorm2d(4) for _ in norms]
    for norm, bn in zip(norms, bns):
        bn.load_state_dict(norm.state_dict(), strict=False)
    for _ in range(3):
        for norm, bn in zip(norms, bns):
            x = torch.randn(2, 4, 3, 3)
            torch.testing.assert_close(norm(x), bn(x))
    for norm, bn in zip(norms, bns):
        torch.testing.assert_close(norm.running_mean, bn.running_mean)
        torch.testing.assert_close(norm.running_var, bn.running_var)
        assert int(norm.hist_count) == 0
    assert len(logged) == 1
    assert 'CBNLinkHook' in logged[0][0]
    assert logged[0][1]['level'] == logging.WARNING


def test_linked_model_input_not_from_a_conv_is_an_error():
    model = make_pair(burnin=0)
    with pytest.raises(RuntimeError, match='straight from a linked'):
        model[1](model[0](torch.randn(2, 3, 5, 5)) + 1)
    naive = CrossIterationBN(4, buffer_num=2, compensate=False)
    for _ in range(3):
        naive(torch.randn(2, 4, 3, 3))
    assert int(naive.hist_count) == 2


def test_eval_contracts_round_trip_and_resume():
    model = make_pair(k=2, burnin=0)
    for _ in range(3):
        model(torch.randn(2, 3, 5, 5)).sum().backward()
    norm = model[1]
    x = torch.randn(2, 4, 5, 5)
    norm.eval()
    expected = F.batch_norm(x, norm.running_mean, norm.running_var,
                            norm.weight, norm.bias, False, 0., norm.eps)
    torch.testing.assert_close(norm(x), expected)
    assert_keeps_channels_last(norm, (2, 4, 3, 3))
    assert_eval_keeps_buffers(norm, x)
    fresh = CrossIterationBN(4, buffer_num=2, burnin_iters=0)
    assert_state_round_trip(norm, fresh, x)
    # a resumed layer continues exactly (history included)
    twin = nn.Sequential(copy.deepcopy(model[0]), fresh)
    link_cbn_convs(twin)
    model.train()
    twin.train()
    u = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(twin(u), model(u))


def test_reset_running_stats_empties_the_history():
    model = make_pair(k=2, burnin=0)
    for _ in range(2):
        model(torch.randn(2, 3, 5, 5))
    norm = model[1]
    norm.reset_running_stats()
    assert int(norm.hist_count) == 0 and norm.hist_gmean.numel() == 0
    assert int(norm.num_batches_tracked) == 0
    torch.testing.assert_close(norm.running_var, torch.ones(4))
    u = torch.randn(2, 3, 5, 5)
    bn = nn.BatchNorm2d(4)
    bn.load_state_dict(norm.state_dict(), strict=False)
    # an empty history pools nothing: the first step is BatchNorm's
    torch.testing.assert_close(model(u), bn(model[0](u)))


def test_empty_batch_and_channels_last_training():
    model = make_pair(k=2, burnin=0)
    u = torch.randn(0, 3, 5, 5, requires_grad=True)
    y = model(u)
    assert y.shape == (0, 4, 5, 5)
    y.sum().backward()
    assert int(model[1].num_batches_tracked) == 0
    twin = copy.deepcopy(model)
    link_cbn_convs(twin)
    u = torch.randn(2, 3, 5, 5)
    y = model(u.to(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, twin(u))


def test_folds_with_mmcv_and_builds_in_conv_module():
    assert CrossIterationBN in MMBCN_NORM_TYPES
    block = ConvModule(3, 4, 3, padding=1,
                       norm_cfg=dict(type='CrossIterationBN', buffer_num=2))
    assert block.norm_name == 'cbn'
    link_cbn_convs(block)
    for _ in range(3):
        block(torch.randn(2, 3, 5, 5)).sum().backward()
    block.eval()
    x = torch.randn(2, 3, 5, 5)
    expected = block(x)
    fused = fuse_conv_bn(copy.deepcopy(block))
    assert not any(isinstance(m, CrossIterationBN) for m in fused.modules())
    torch.testing.assert_close(fused(x), expected)
    name, layer = build_norm_layer(dict(type='CrossIterationBN'), 8, 3)
    assert name == 'cbn3' and layer.buffer_num == 3


def test_link_hook_in_a_runner(tmp_path):

    class CBNNet(TinyNet):

        def __init__(self, cfg=None):
            super().__init__()
            self.norm = CrossIterationBN(16, buffer_num=2)

    runner = make_runner(tmp_path, 3, custom_hooks=[dict(type='CBNLinkHook')],
                         net=CBNNet)
    runner.train()
    hook = [h for h in runner.hooks if isinstance(h, CBNLinkHook)][0]
    assert hook.convs == 1
    assert int(runner.model.norm.hist_count) == 2


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_features=0), 'num_features=0'),
    (dict(num_features=4, eps=0), 'eps=0'),
    (dict(num_features=4, momentum=2), 'momentum=2'),
    (dict(num_features=4, buffer_num=-1), 'buffer_num=-1'),
    (dict(num_features=4, burnin_iters=1.5), 'burnin_iters=1.5'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossIterationBN(**kwargs)
