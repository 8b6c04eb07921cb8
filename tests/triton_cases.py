"""Checks of BCN's Triton kernels against the torch path, shared by
tests/test_layers_triton.py (Triton's interpreter on CPU, in a subprocess
with TRITON_INTERPRET=1) and tests/test_layers_gpu.py (compiled, on CUDA).

Run as a script, every case runs on the CPU and the script exits non-zero at
the first mismatch; it prints one line per case that passed.
"""
import copy
import itertools

import torch

from mmbcn import BCN
from mmbcn.models.functional.bcn import channel_moments, fixed_stats_bcn
from mmbcn.models.functional.bcn_triton import triton_micro_bcn

# (N, C, G, L): one and several samples, odd sizes (masked lanes), G = 1
FUNCTIONAL_SHAPES = ((1, 64, 8, 99), (3, 12, 4, 17), (2, 48, 1, 33))


def check_functional(device, n, c, g, length, channel_affine, update):
    """triton_micro_bcn against fixed_stats_bcn(impl='torch') with the
    estimate update written out in torch: output, all five gradients, the
    moved estimates and the batch moments."""
    gen = torch.Generator().manual_seed(n * 1000 + c + g)

    def rand(*shape, scale=1., shift=0.):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device)

    x = rand(n, c, length, scale=2., shift=1.).requires_grad_()
    est_mean = rand(c, scale=.1)
    est_var = (torch.rand(c, generator=gen) + .5).to(device)
    size = c if channel_affine else g
    params = [rand(c, scale=.5, shift=1.), rand(c, scale=.5),
              rand(size, scale=.5, shift=1.), rand(size, scale=.5)]
    for p in params:
        p.requires_grad_()
    rate = torch.tensor(.1, device=device)
    steps = torch.tensor(2, device=device)

    ref_mean, ref_var = est_mean.clone(), est_var.clone()
    with torch.no_grad():
        mean_nc, var_nc = channel_moments(x.detach(), impl='torch')
        m = mean_nc.mean(0)
        v = (var_nc + (mean_nc - ref_mean) ** 2).mean(0)
        if update:
            r = torch.maximum(rate, 1 / (steps.float() + 1))
            ref_mean += r * (m - ref_mean)
            ref_var += r * (v - ref_var)
    y_ref = fixed_stats_bcn(x, mean_nc, var_nc, ref_mean, ref_var, *params,
                            g, 1e-5, impl='torch')
    grad_y = rand(*y_ref.shape)
    grads_ref = torch.autograd.grad(y_ref, [x] + params, grad_y)

    tri_mean, tri_var = est_mean.clone(), est_var.clone()
    # without the update, also the caller's moments (the cross-rank path)
    given = {} if update else dict(mean_nc=mean_nc, var_nc=var_nc)
    y, m_t, v_t = triton_micro_bcn(x, tri_mean, tri_var, *params, g, 1e-5,
                                   moments=True, update=update, rate=rate,
                                   steps=steps, **given)
    grads = torch.autograd.grad(y, [x] + params, grad_y)
    close = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(y, y_ref, **close)
    for name, a, b in zip(('x', 'batch_weight', 'batch_bias', 'weight',
                           'bias'), grads, grads_ref):
        torch.testing.assert_close(a, b, **close, msg=f'grad of {name}')
    torch.testing.assert_close(m_t, m, **close)
    torch.testing.assert_close(v_t, v, **close)
    torch.testing.assert_close(tri_mean, ref_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tri_var, ref_var, rtol=1e-5, atol=1e-6)


def check_layer(device, affine, sync):
    """A BCN layer on the Triton path against a copy on the CPU path over
    three training steps (outputs, gradients, buffers, pending deferred
    statistics), then in eval mode."""
    torch.manual_seed(0)
    ref = BCN(32, 4, affine=affine, sync=sync, update_rate=0.1)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape) * .5 + 1)
    tri = copy.deepcopy(ref).to(device)
    for _ in range(3):
        x = torch.randn(2, 32, 7, 9) * 2 + 1
        x_ref = x.clone().requires_grad_()
        x_tri = x.to(device).requires_grad_()
        y_ref = ref(x_ref)
        y_tri = tri._triton_forward(x_tri.reshape(2, 32, -1)).view(x.shape)
        grad_y = torch.randn_like(y_ref)
        y_ref.backward(grad_y)
        y_tri.backward(grad_y.to(device))
        torch.testing.assert_close(y_tri.cpu(), y_ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x_tri.grad.cpu(), x_ref.grad, rtol=1e-4,
                                   atol=1e-4)
    for (name, a), b in zip(ref.named_parameters(), tri.parameters()):
        torch.testing.assert_close(b.grad.cpu(), a.grad, rtol=1e-4,
                                   atol=1e-4, msg=name)
    for (name, a), b in zip(ref.named_buffers(), tri.buffers()):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6,
                                   msg=name)
    assert len(tri.deferred) == len(ref.deferred)
    ref.eval()
    tri.eval()
    x = torch.randn(3, 32, 5, 5)
    y_tri = tri._triton_forward(x.to(device).reshape(3, 32, -1))
    torch.testing.assert_close(y_tri.view(x.shape).cpu(), ref(x), rtol=1e-4,
                               atol=1e-4)


FUNCTIONAL_CASES = [(*shape, channel_affine, update)
                    for shape in FUNCTIONAL_SHAPES
                    for channel_affine, update in itertools.product(
                        (False, True), (False, True))]
LAYER_CASES = list(itertools.product(('group', 'channel'),
                                     ('none', 'deferred')))

if __name__ == '__main__':
    for case in FUNCTIONAL_CASES:
        check_functional('cpu', *case)
        print('functional ok', *case, flush=True)
    for case in LAYER_CASES:
        check_layer('cpu', *case)
        print('layer ok', *case, flush=True)
