"""BCN against a plain reference written from the formulas in the docs."""
import pytest
import torch
from mmcv.cnn import build_norm_layer

from mmbcn import BCN
from mmbcn.models.functional import channel_moments, fixed_stats_bcn


def reference_bcn(x, est_mean, est_var, bw, bb, w, b, groups, eps,
                  batch_stats=False):
    """Plain composition: batch stage then group stage, written out."""
    n, c = x.shape[:2]
    shape = (1, c) + (1,) * (x.dim() - 2)
    if batch_stats:
        dims = [0] + list(range(2, x.dim()))
        mu = x.mean(dims)
        var = x.var(dims, unbiased=False)
    else:
        mu, var = est_mean, est_var
    x1 = (x - mu.view(shape)) / torch.sqrt(var.view(shape) + eps)
    x1 = x1 * bw.view(shape) + bb.view(shape)
    xg = x1.reshape(n, groups, -1)
    mean_g = xg.mean(-1, keepdim=True)
    var_g = ((xg - mean_g) ** 2).mean(-1, keepdim=True)
    xhat = ((xg - mean_g) / torch.sqrt(var_g + eps)).reshape(x.shape)
    if w.numel() == groups:  # per-group affine
        w = w.repeat_interleave(c // groups)
        b = b.repeat_interleave(c // groups)
    return xhat * w.view(shape) + b.view(shape)


def reference_update(x, mu, var, rate):
    dims = [0] + list(range(2, x.dim()))
    m = x.mean(dims)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    v = ((x - mu.view(shape)) ** 2).mean(dims)
    return (1 - rate) * mu + rate * m, (1 - rate) * var + rate * v


def randomize(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 +
                    1.0)
    return layer


@pytest.mark.parametrize('affine', ['group', 'channel'])
@pytest.mark.parametrize('warmup', [True, False])
def test_micro_train_steps_and_eval(affine, warmup):
    torch.manual_seed(0)
    layer = randomize(BCN(16, num_groups=4, affine=affine, update_rate=0.1,
                          average_warmup=warmup))
    mu, var = torch.zeros(16), torch.ones(16)
    for step in range(5):
        x = torch.randn(2, 16, 5, 6) * 3 + torch.arange(16.).view(1, -1, 1, 1)
        rate = max(0.1, 1 / (step + 1)) if warmup else 0.1
        mu, var = reference_update(x, mu, var, rate)
        y = layer(x)
        expected = reference_bcn(x, mu, var, layer.batch_weight,
                                 layer.batch_bias, layer.weight, layer.bias,
                                 4, 1e-5)
        torch.testing.assert_close(layer.running_mean, mu)
        torch.testing.assert_close(layer.running_var, var)
        torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    assert layer.num_batches_tracked.item() == 5
    layer.eval()
    x = torch.randn(1, 16, 3, 3)
    y = layer(x)
    torch.testing.assert_close(layer.running_mean, mu)  # eval never updates
    assert layer.num_batches_tracked.item() == 5
    torch.testing.assert_close(
        y, reference_bcn(x, mu, var, layer.batch_weight, layer.batch_bias,
                         layer.weight, layer.bias, 4, 1e-5),
        rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_large_batch_mode(affine):
    torch.manual_seed(1)
    layer = randomize(BCN(8, num_groups=2, mode='large', affine=affine,
                          update_rate=0.2, average_warmup=False))
    x = torch.randn(3, 8, 4, 4, requires_grad=True)
    y = layer(x)
    ref_x = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True)
              for p in (layer.batch_weight, layer.batch_bias, layer.weight,
                        layer.bias)]
    expected = reference_bcn(ref_x, None, None, *params, 2, 1e-5,
                             batch_stats=True)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    grad = torch.randn_like(y)
    y.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-4)
    for p, q in zip((layer.batch_weight, layer.batch_bias, layer.weight,
                     layer.bias), params):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4)
    # running statistics follow BatchNorm's rule with momentum r
    m = x.detach().mean((0, 2, 3))
    v = x.detach().var((0, 2, 3), unbiased=True)
    torch.testing.assert_close(layer.running_mean, 0.2 * m)
    torch.testing.assert_close(layer.running_var, 0.8 + 0.2 * v)
    # eval uses the estimates
    layer.eval()
    x2 = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(
        layer(x2),
        reference_bcn(x2, layer.running_mean, layer.running_var,
                      layer.batch_weight, layer.batch_bias, layer.weight,
                      layer.bias, 2, 1e-5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_micro_gradients_match_reference(affine):
    """Gradients of the fused function equal autograd of the reference."""
    torch.manual_seed(2)
    layer = randomize(BCN(12, num_groups=3, affine=affine))
    layer.running_mean.normal_()
    layer.running_var.uniform_(0.5, 2)
    layer.eval()  # fixed estimates: same math as a training step
    x = (torch.randn(2, 12, 7) * 4 + 10).requires_grad_(True)
    y = layer(x)
    ref_x = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True)
              for p in (layer.batch_weight, layer.batch_bias, layer.weight,
                        layer.bias)]
    expected = reference_bcn(ref_x, layer.running_mean, layer.running_var,
                             *params, 3, 1e-5)
    grad = torch.randn_like(y)
    y.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-3, atol=1e-4)
    for p, q in zip((layer.batch_weight, layer.batch_bias, layer.weight,
                     layer.bias), params):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-3)


def _gradcheck_layer(layer, x):
    """gradcheck of the layer's output w.r.t. its input and parameters.

    Only for steps whose output does not depend on the estimates' update:
    eval (estimates fixed) and large-batch training (batch statistics)."""
    names = [n for n, _ in layer.named_parameters()]

    def fn(inp, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (inp,))

    inputs = (x, *[p.detach().clone().requires_grad_(True)
                   for p in layer.parameters()])
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize('mode, training', [('micro', False),
                                            ('large', True),
                                            ('large', False)])
@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_gradcheck_float64(mode, affine, training):
    torch.manual_seed(3)
    layer = randomize(BCN(6, num_groups=3, mode=mode, affine=affine,
                          update_rate=0.3)).double()
    layer.running_mean.normal_()
    layer.running_var.uniform_(0.5, 2)
    layer.train(training)
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64, requires_grad=True)
    _gradcheck_layer(layer, x)


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_gradcheck_float64_micro_training_step(affine):
    """A micro-batch training step: the estimates it normalizes with are
    updated from x but carry no gradient, so the step's derivative is that
    of the function with those (updated) estimates held fixed."""
    torch.manual_seed(4)
    layer = randomize(BCN(6, num_groups=3, affine=affine)).double()
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64, requires_grad=True)
    layer(x)  # one training step updates the estimates
    est_mean = layer.running_mean.clone()
    est_var = layer.running_var.clone()

    def step(inp, bw, bb, w, b):
        mean_nc, var_nc = channel_moments(inp.detach().reshape(2, 6, -1))
        return fixed_stats_bcn(inp.reshape(2, 6, -1), mean_nc, var_nc,
                               est_mean, est_var, bw, bb, w, b, 3, 1e-5)

    params = [p.detach().clone().requires_grad_(True)
              for p in (layer.batch_weight, layer.batch_bias, layer.weight,
                        layer.bias)]
    assert torch.autograd.gradcheck(step, (x, *params), eps=1e-6, atol=1e-5)
    # and the layer's own backward in that training step is this function's
    layer.running_mean.copy_(est_mean)  # replay: make the update a no-op
    layer.running_var.copy_(est_var)
    layer.update_rate.fill_(1e-12)
    layer.average_warmup = False
    y_layer = layer(x)
    grad = torch.randn_like(y_layer)
    (gx,) = torch.autograd.grad(y_layer, x, grad)
    y_ref = step(x, *params).reshape(x.shape)
    (gx_ref,) = torch.autograd.grad(y_ref, x, grad)
    torch.testing.assert_close(gx, gx_ref)


@pytest.mark.parametrize('shape', [(2, 8), (2, 8, 5), (1, 8, 3, 3),
                                   (2, 8, 2, 3, 4)])
def test_any_rank_input(shape):
    layer = BCN(8, num_groups=4)
    x = torch.randn(*shape)
    y = layer(x)
    assert y.shape == x.shape
    flat = x.reshape(shape[0], 8, -1)
    layer2 = BCN(8, num_groups=4)
    torch.testing.assert_close(layer2(flat).reshape(shape), y)


def test_build_norm_layer_convention():
    name, layer = build_norm_layer(
        dict(type='BCN', num_groups=8, mode='micro', update_rate=0.05,
             affine='channel', requires_grad=False), 32, postfix=1)
    assert name == 'bcn1'
    assert isinstance(layer, BCN)
    assert layer.eps == 1e-5  # injected by build_norm_layer
    assert layer.num_groups == 8 and layer.affine == 'channel'
    assert float(layer.update_rate) == pytest.approx(0.05)
    assert all(not p.requires_grad for p in layer.parameters())
    name, layer = build_norm_layer(dict(type='BCN', eps=1e-3), 64)
    assert name == 'bcn' and layer.num_groups == 32 and layer.eps == 1e-3


def test_update_rate_is_a_schedulable_buffer():
    layer = BCN(4, num_groups=2, average_warmup=False)
    assert 'update_rate' in layer.state_dict()
    layer.update_rate.fill_(0.5)
    x = torch.randn(2, 4, 3)
    layer(x)
    torch.testing.assert_close(layer.running_mean, 0.5 * x.mean((0, 2)))


@pytest.mark.parametrize('kwargs, words', [
    (dict(num_features=48, num_groups=32), ['num_groups=32', '48',
                                            '[1, 2, 3, 4, 6, 8, 12, 16, 24, 48]']),
    (dict(num_features=32, mode='tiny'), ["mode='tiny'", 'micro', 'large']),
    (dict(num_features=32, affine='none'), ["affine='none'", 'group',
                                            'channel']),
    (dict(num_features=32, update_rate=0.), ['update_rate=0.0', '(0, 1]']),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        BCN(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize('shape', [(8,), (2, 16, 4, 4)])
def test_bad_input(shape):
    layer = BCN(8, num_groups=4)
    with pytest.raises(ValueError, match=r'BCN: input of shape .* \(N, 8, \*\)'):
        layer(torch.randn(*shape))


def test_autocast_runs_in_float32():
    layer = BCN(8, num_groups=4)
    x = torch.randn(2, 8, 4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.float32
    layer.eval()
    torch.testing.assert_close(
        layer(x.bfloat16().float()),
        reference_bcn(x.bfloat16().float(), layer.running_mean,
                      layer.running_var, layer.batch_weight, layer.batch_bias,
                      layer.weight, layer.bias, 4, 1e-5),
        rtol=1e-4, atol=1e-4)


def test_large_mean_input_keeps_accurate_statistics():
    """Rows with a mean far above their spread (one-pass cancellation)."""
    layer = BCN(4, num_groups=2).eval()
    x = torch.randn(2, 4, 50) * 0.1 + 30.
    layer.running_mean.fill_(30.)
    layer.running_var.fill_(0.01)
    expected = reference_bcn(x.double(), layer.running_mean.double(),
                             layer.running_var.double(),
                             *[p.double() for p in (layer.batch_weight,
                                                    layer.batch_bias,
                                                    layer.weight,
                                                    layer.bias)], 2, 1e-5)
    torch.testing.assert_close(layer(x).double(), expected, rtol=1e-3,
                               atol=1e-3)


def test_output_can_be_modified_in_place():
    """mmcv ConvModule follows the norm with an inplace ReLU."""
    layer = BCN(8, num_groups=4)
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    y = layer(x)
    ref = y.detach().clamp(min=0)
    torch.nn.functional.relu(y, inplace=True)
    torch.testing.assert_close(y.detach(), ref)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('impl', ['torch', 'ext'])
@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_both_implementations_match_reference(impl, affine):
    """The C++ row kernels and the torch-native path, forward and backward,
    against the plain reference; gradcheck of each in float64."""
    from mmbcn.models.functional.bcn import has_ext
    if impl == 'ext' and not has_ext():
        pytest.skip('mmbcn._ext not built')
    torch.manual_seed(6)
    c, g = 12, 3
    w_shape = g if affine == 'group' else c
    params = [torch.rand(c) + 0.5, torch.randn(c), torch.rand(w_shape) + 0.5,
              torch.randn(w_shape)]
    est_mean, est_var = torch.randn(c), torch.rand(c) + 0.5
    x = (torch.randn(2, c, 9) * 3 + 1).requires_grad_(True)
    ps = [p.clone().requires_grad_(True) for p in params]
    mean_nc, var_nc = channel_moments(x.detach(), impl=impl)
    torch.testing.assert_close(mean_nc, x.detach().mean(2))
    torch.testing.assert_close(var_nc, x.detach().var(2, unbiased=False))
    y = fixed_stats_bcn(x, mean_nc, var_nc, est_mean, est_var, *ps, g, 1e-5,
                        impl=impl)
    x_ref = x.detach().clone().requires_grad_(True)
    ps_ref = [p.clone().requires_grad_(True) for p in params]
    y_ref = reference_bcn(x_ref, est_mean, est_var, *ps_ref, g, 1e-5)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-3, atol=1e-4)
    for p, q in zip(ps, ps_ref):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-3)

    xd = x.detach().double().requires_grad_(True)
    pds = [p.double().requires_grad_(True) for p in params]

    def fn(inp, *qs):
        m, v = channel_moments(inp.detach(), impl=impl)
        return fixed_stats_bcn(inp, m, v, est_mean.double(),
                               est_var.double(), *qs, g, 1e-5, impl=impl)

    assert torch.autograd.gradcheck(fn, (xd, *pds), eps=1e-6, atol=1e-5)


def test_impl_errors():
    from mmbcn.models.functional.bcn import resolve_impl
    with pytest.raises(ValueError, match="impl='cuda'"):
        resolve_impl('cuda', torch.zeros(1, 1, 1))
    with pytest.raises(ValueError, match="impl='ext' needs"):
        resolve_impl('ext', torch.zeros(1, 1, 1, dtype=torch.float16))
    assert resolve_impl('torch', torch.zeros(1, 1, 1)) == 'torch'
