"""FRN + TLU against the paper's formulas."""
import pytest
import torch
from mmcv.cnn import ConvModule, build_norm_layer

from mmbcn.models.layers import FRN, MMBCN_NORM_TYPES
from mmbcn.models.layers.frn import filter_response_norm
from norm_checks import (assert_empty_batch, assert_eval_keeps_buffers,
                         assert_keeps_channels_last, assert_state_round_trip,
                         randomize)


def ref_frn(x, gamma, beta, tau, eps):
    """Per sample and channel: nu2 = mean over H, W of x^2."""
    n, c, h, w = x.shape
    y = torch.empty_like(x)
    for i in range(n):
        for j in range(c):
            nu2 = (x[i, j] ** 2).sum() / (h * w)
            v = gamma[j] * x[i, j] / torch.sqrt(nu2 + eps[j]) + beta[j]
            y[i, j] = v if tau is None else torch.clamp(v, min=tau[j])
    return y


@pytest.mark.parametrize('tlu', [True, False])
@pytest.mark.parametrize('learnable_eps', [False, True])
def test_matches_reference(tlu, learnable_eps):
    layer = randomize(FRN(4, eps=1e-3, tlu=tlu,
                          learnable_eps=learnable_eps))
    x = torch.randn(2, 4, 3, 5) * 3
    eps = torch.full((4, ), 1e-3)
    if learnable_eps:
        with torch.no_grad():
            layer.eps_l.copy_(torch.tensor([-0.5, 0.2, 1.0, -2.0]))
        eps = 1e-3 + layer.eps_l.detach().abs()
    tau = layer.tau.detach() if tlu else None
    ref = ref_frn(x, layer.weight.detach(), layer.bias.detach(), tau, eps)
    torch.testing.assert_close(layer(x), ref)
    # training and eval compute the same thing
    torch.testing.assert_close(layer.eval()(x), ref)


def test_samples_are_independent():
    """No batch statistics: a sample's output ignores the other samples."""
    layer = randomize(FRN(4))
    x = torch.randn(3, 4, 3, 3)
    torch.testing.assert_close(layer(x)[1:2], layer(x[1:2]))


def test_tlu_thresholds_below_tau():
    layer = FRN(2, tlu=True)
    with torch.no_grad():
        layer.tau.fill_(0.25)
    y = layer(torch.randn(3, 2, 4, 4))
    assert bool((y >= 0.25).all()) and bool((y == 0.25).any())


def test_two_dim_input_uses_x_squared():
    layer = FRN(3, eps=1e-6, learnable_eps=True, tlu=False)
    x = torch.randn(4, 3)
    eps = 1e-6 + layer.eps_l.detach().abs()
    torch.testing.assert_close(layer(x), x / torch.sqrt(x ** 2 + eps))


@pytest.mark.parametrize('learnable_eps', [False, True])
def test_gradcheck(learnable_eps):
    layer = randomize(FRN(3, eps=1e-2, learnable_eps=learnable_eps)).double()
    with torch.no_grad():
        layer.tau.copy_(torch.tensor([-5., -5., 0.3]))  # kinks away from x
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    params = list(layer.parameters())
    # gradients of x and of every parameter
    inputs = (x, *[p.detach().clone().requires_grad_(True) for p in params])

    def g(x, *ps):
        w, b, tau = ps[:3]
        eps = 1e-2 + ps[3].abs() if learnable_eps else 1e-2
        return filter_response_norm(x, w, b, eps, tau)

    assert torch.autograd.gradcheck(g, inputs)
    # the module's autograd agrees with the functional one
    x2 = x.detach().clone().requires_grad_(True)
    layer(x2).sum().backward()
    y = g(*inputs)
    y.sum().backward()
    torch.testing.assert_close(x2.grad, inputs[0].grad)
    for p, q in zip(params, inputs[1:]):
        torch.testing.assert_close(p.grad, q.grad)


def test_contracts():
    layer = randomize(FRN(4))
    assert_empty_batch(layer, (2, 4, 3, 3))
    assert_keeps_channels_last(layer, (2, 4, 3, 3))
    x = torch.randn(2, 4, 3, 3)
    assert_eval_keeps_buffers(layer, x)
    layer = randomize(FRN(4, learnable_eps=True), seed=7)
    assert_state_round_trip(layer, FRN(4, learnable_eps=True), x)


def test_build_norm_layer_and_conv_module():
    assert FRN in MMBCN_NORM_TYPES
    name, layer = build_norm_layer(dict(type='FRN', eps=1e-6,
                                        requires_grad=False), 8, postfix=1)
    assert name == 'frn1' and isinstance(layer, FRN) and layer.eps == 1e-6
    assert not any(p.requires_grad for p in layer.parameters())
    # the paper's FRN+TLU block: no activation after the norm
    block = ConvModule(3, 8, 3, padding=1, norm_cfg=dict(type='FRN'),
                       act_cfg=None)
    assert block(torch.randn(1, 3, 5, 5)).shape == (1, 8, 5, 5)


def test_relu_after_tlu_clamps_the_threshold_at_zero():
    layer = randomize(FRN(4))
    with torch.no_grad():
        layer.tau.copy_(torch.tensor([-1., -0.1, 0.2, 0.7]))
    x = torch.randn(2, 4, 3, 3)
    plain = FRN(4, tlu=False)
    plain.load_state_dict(layer.state_dict(), strict=False)
    floor = layer.tau.clamp(min=0).view(1, -1, 1, 1)
    expected = torch.maximum(plain(x), floor)
    torch.testing.assert_close(torch.relu(layer(x)), expected)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_features=0), 'num_features=0'),
    (dict(num_features=4, eps=0), 'eps=0'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FRN(**kwargs)


def test_bad_input():
    with pytest.raises(ValueError, match=r'expected \(N, 4, \*\)'):
        FRN(4)(torch.randn(2, 3, 2, 2))
