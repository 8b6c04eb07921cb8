"""Second-order gradients (gradient penalties, create_graph=True): BCN's
Functions pass gradgradcheck in float64 and a gradient penalty reaches
every parameter, as with torch's own norms."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from mmbcn.models.functional.bcn import (channel_moments, fixed_stats_bcn,
                                         fused_micro_bcn, has_ext)
from norm_cases import NORMS, build_norm

D = torch.float64


def inputs(affine_size=4, c=8, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, shift=0.):
        return (torch.rand(*shape, generator=gen, dtype=D) + shift)

    x = (rand(2, c, 5) * 2 - 1).requires_grad_()
    est = (rand(c) * .2, rand(c, shift=.5))
    params = [rand(c, shift=.5).requires_grad_(), rand(c).requires_grad_(),
              rand(affine_size, shift=.5).requires_grad_(),
              rand(affine_size).requires_grad_()]
    return x, est, params


@pytest.mark.parametrize('impl', ['torch', 'ext'])
@pytest.mark.parametrize('affine_size', [4, 8])
def test_fixed_stats_bcn_gradgradcheck(impl, affine_size):
    if impl == 'ext' and not has_ext():
        pytest.skip("mmbcn's C++ kernels are not built")
    x, (mean, var), params = inputs(affine_size)

    def f(x, *params):
        with torch.no_grad():
            mean_nc, var_nc = channel_moments(x)
        # the per-(n, c) moments are the input's: recompute them with grad
        mean_nc = x.mean(2)
        var_nc = x.var(2, unbiased=False)
        return fixed_stats_bcn(x, mean_nc, var_nc, mean, var, *params, 4,
                               1e-5, impl=impl)

    assert gradcheck(f, (x, *params), fast_mode=True)
    assert gradgradcheck(f, (x, *params), fast_mode=True)


@pytest.mark.skipif(not has_ext(), reason="mmbcn's C++ kernels not built")
def test_fused_micro_bcn_gradgradcheck():
    x, (mean, var), params = inputs()

    def f(x, *params):
        return fused_micro_bcn(x, mean, var, *params, 4, 1e-5)[0]

    assert gradcheck(f, (x, *params), fast_mode=True)
    assert gradgradcheck(f, (x, *params), fast_mode=True)


@pytest.mark.parametrize('case', sorted(NORMS))
def test_layers_in_eval_gradgradcheck(case):
    layer = build_norm(case, 8).to(D)
    layer.train()
    layer(torch.randn(3, 8, 4, 4, dtype=D))  # move the estimates
    layer.eval()
    x = torch.randn(2, 8, 2, 3, dtype=D, requires_grad=True)
    params = list(layer.parameters())
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (x, ))

    assert gradgradcheck(f, (x, *params), fast_mode=True)


def reference_micro_bcn(x, mean, var, bw, bb, w, b, groups, eps=1e-5):
    """BCN at fixed batch statistics from its formula (module docstring)."""
    shape = (1, -1, 1, 1)
    x1 = bw.view(shape) * (x - mean.view(shape)) / torch.sqrt(
        var.view(shape) + eps) + bb.view(shape)
    k = x.shape[1] // w.numel()
    return F.group_norm(x1, groups, w.repeat_interleave(k),
                        b.repeat_interleave(k), eps)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_gradient_penalty_reaches_bcn_parameters(dtype):
    """A gradient penalty in a micro-batch training step: the gradient of
    the input has a graph, and the penalty's gradients for BCN's
    parameters are the reference formula's (float32: the fused C++ path;
    bfloat16: the torch path)."""
    torch.manual_seed(0)
    layer = build_norm('bcn-micro', 8).to(dtype)
    before = copy.deepcopy(layer)
    x = torch.randn(2, 8, 4, 4, dtype=dtype, requires_grad=True)
    y = layer(x)
    (gx, ) = torch.autograd.grad((y * y.detach().sin()).sum(), x,
                                 create_graph=True)
    assert gx.grad_fn is not None
    penalty = gx.square().sum()
    penalty.backward()
    ref_params = [p.detach().clone().float().requires_grad_()
                  for p in before.parameters()]
    x_ref = x.detach().float().requires_grad_()
    y_ref = reference_micro_bcn(x_ref, layer.running_mean.float(),
                                layer.running_var.float(), *ref_params, 4)
    (gx_ref, ) = torch.autograd.grad(
        (y_ref * y_ref.detach().sin()).sum(), x_ref, create_graph=True)
    gx_ref.square().sum().backward()
    tol = 1e-3 if dtype == torch.float32 else 1e-1
    for (name, p), ref in zip(layer.named_parameters(), ref_params):
        if ref.grad is None:  # the output bias leaves d y / d x unchanged
            assert p.grad is None or not p.grad.any(), name
            continue
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad.float(), ref.grad, rtol=tol,
                                   atol=tol * ref.grad.abs().max().item(),
                                   msg=name)
