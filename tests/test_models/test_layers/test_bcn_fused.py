"""The fused C++ micro-batch BCN step against the unfused path."""
import pytest
import torch

from mmbcn import BCN
from mmbcn.models.functional import (can_fuse, channel_moments,
                                     fixed_stats_bcn, fused_micro_bcn)
from mmbcn.models.functional.bcn import has_ext

pytestmark = pytest.mark.skipif(not has_ext(), reason='mmbcn._ext not built')


def make_inputs(n, c, length, groups, affine, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1., shift=0.):
        return torch.randn(*shape, generator=g, dtype=dtype) * scale + shift

    x = rand(n, c, length, scale=3.) + torch.arange(c, dtype=dtype).view(
        1, -1, 1)
    size = groups if affine == 'group' else c
    est = (rand(c), rand(c).abs() + 0.5)
    params = (rand(c, scale=0.5, shift=1.), rand(c, scale=0.5),
              rand(size, scale=0.5, shift=1.), rand(size, scale=0.5))
    return x, est, params


def unfused(x, est_mean, est_var, params, groups, update, rate):
    """The same step as BCN's unfused path: moments, update, FixedStatsBCN
    on torch's kernels."""
    mean_nc, var_nc = channel_moments(x.detach(), impl='torch')
    m = mean_nc.mean(0)
    v = (var_nc + (mean_nc - est_mean).pow(2)).mean(0)
    if update:
        est_mean = torch.lerp(est_mean, m, rate)
        est_var = torch.lerp(est_var, v, rate)
    y = fixed_stats_bcn(x, mean_nc, var_nc, est_mean, est_var, *params,
                        groups, 1e-5, impl='torch')
    return y, est_mean, est_var, m, v


@pytest.mark.parametrize('affine', ['group', 'channel'])
@pytest.mark.parametrize('update', [True, False])
@pytest.mark.parametrize('shape', [(2, 16, 30), (1, 32, 7), (3, 8, 2500)])
def test_fused_matches_unfused(affine, update, shape):
    n, c, length = shape
    groups = 4
    x, (em, ev), params = make_inputs(n, c, length, groups, affine,
                                      torch.float32)
    grad = torch.randn(n, c, length, generator=torch.Generator().manual_seed(
        1))
    results = []
    for fused in (True, False):
        xi = x.clone().requires_grad_(True)
        ps = [p.clone().requires_grad_(True) for p in params]
        if fused:
            y, new_mean, new_var, m, v = fused_micro_bcn(
                xi, em, ev, *ps, groups, 1e-5, update, 0.3)
        else:
            y, new_mean, new_var, m, v = unfused(xi, em, ev, ps, groups,
                                                 update, 0.3)
        grads = torch.autograd.grad(y, [xi] + ps, grad)
        results.append((y, new_mean, new_var, m, v) + tuple(grads))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_fused_gradcheck_float64(affine):
    """gradcheck with the estimates held fixed; a step that updates them
    has the gradient of the function with the updated estimates held fixed
    (they carry no gradient)."""
    x, (em, ev), params = make_inputs(2, 6, 5, 3, affine, torch.float64)
    inputs = (x.requires_grad_(True), ) + tuple(
        p.requires_grad_(True) for p in params)

    def fn(inp, *ps):
        return fused_micro_bcn(inp, em, ev, *ps, 3, 1e-5)[0]

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
    y, new_mean, new_var, _, _ = fused_micro_bcn(x, em, ev, *inputs[1:], 3,
                                                 1e-5, True, 0.25)
    y_fixed = fused_micro_bcn(x, new_mean, new_var, *inputs[1:], 3, 1e-5)[0]
    torch.testing.assert_close(y, y_fixed)
    grad = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, inputs, grad),
                    torch.autograd.grad(y_fixed, inputs, grad)):
        torch.testing.assert_close(a, b)


def test_fused_results_do_not_depend_on_threads():
    x, (em, ev), params = make_inputs(2, 64, 300, 8, 'group', torch.float32)
    grad = torch.randn_like(x)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xi = x.clone().requires_grad_(True)
            y = fused_micro_bcn(xi, em, ev, *params, 8, 1e-5, True, 0.1)[0]
            outs.append((y, torch.autograd.grad(y, xi, grad)[0]))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@pytest.mark.parametrize('sync', ['layer', 'none', 'deferred'])
def test_layer_fused_and_unfused_paths_agree(sync, monkeypatch):
    """The same BCN steps with the fused path and with it switched off."""
    torch.manual_seed(0)
    xs = [torch.randn(2, 16, 5, 6) * 2 + 1 for _ in range(3)]
    runs = []
    for fused in (True, False):
        layer = BCN(16, 4, update_rate=0.2, sync=sync)
        if not fused:
            monkeypatch.setattr(layer, '_fusable', lambda x3: False)
        assert layer._fusable(xs[0].reshape(2, 16, -1)) is fused
        outs = []
        for x in xs:
            x = x.clone().requires_grad_(True)
            y = layer(x)
            outs.append(y.detach())
            outs.extend(torch.autograd.grad(y.pow(2).sum(),
                                            [x, layer.batch_weight]))
        layer.eval()
        outs.append(layer(xs[0]).detach())
        state = [layer.running_mean, layer.running_var,
                 layer.num_batches_tracked.float()]
        pending = [p.clone() for p in layer.deferred.pending]
        runs.append((outs, state, pending))
    (o1, s1, p1), (o2, s2, p2) = runs
    for a, b in zip(o1 + s1, o2 + s2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert len(p1) == len(p2) == (3 if sync == 'deferred' else 0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_can_fuse():
    x = torch.zeros(1, 2, 3)
    assert can_fuse(x, torch.zeros(2))
    assert not can_fuse(x.half(), torch.zeros(2).half())
    assert not can_fuse(x, torch.zeros(2, dtype=torch.float64))
    layer = BCN(4, 2).double()
    assert not layer._fusable(torch.zeros(1, 4, 3))  # float x, double layer
    assert layer(torch.zeros(1, 4, 3, dtype=torch.float64)).dtype == \
        torch.float64


def test_fused_bad_inputs():
    x = torch.zeros(1, 4, 3)
    ones, zeros = torch.ones(4), torch.zeros(4)
    with pytest.raises(ValueError, match='fused_micro_bcn needs'):
        fused_micro_bcn(x.half(), zeros, ones, ones, zeros, ones, zeros, 2,
                        1e-5)
    with pytest.raises(ValueError, match=r'num_groups \(3\) must divide '
                       r'the channels \(4\)'):
        fused_micro_bcn(x, zeros, ones, ones, zeros, ones, zeros, 3, 1e-5)
    with pytest.raises(ValueError, match=r'weight needs one value per group '
                       r'\(2\) or per channel \(4\), got 3'):
        fused_micro_bcn(x, zeros, ones, ones, zeros, torch.ones(3),
                        torch.zeros(3), 2, 1e-5)
    with pytest.raises(ValueError, match=r'est_var needs one value per '
                       r'channel \(4\), got 5'):
        fused_micro_bcn(x, zeros, torch.ones(5), ones, zeros, ones, zeros, 2,
                        1e-5)
    with pytest.raises(ValueError, match=r'must be \(N, C, L\)'):
        fused_micro_bcn(x[0], zeros, ones, ones, zeros, ones, zeros, 2, 1e-5)
