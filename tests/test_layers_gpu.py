"""The GPU path of the layers, checked against the CPU path.

On CUDA, BCN's fixed-statistics passes run on torch's fused native kernels
(``impl='torch'``, chosen by ``'auto'``); the CPU result (C++ row kernels
where built) is the reference. Skipped on machines without CUDA.
"""
import copy

import pytest
import torch

from mmbcn import BCN, WSConv2d
from mmbcn.models.functional.bcn import resolve_impl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')


def _randomized(layer):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + 1.0)
    return layer


def _run(layer, xs):
    outs, grads = [], []
    for x in xs:
        x = x.clone().requires_grad_()
        y = layer(x)
        (y * torch.linspace(-1, 1, y.numel(), device=y.device).view_as(y)
         ).sum().backward()
        outs.append(y.detach().cpu())
        grads.append(x.grad.cpu())
    return outs, grads


def test_auto_picks_the_native_path_on_cuda():
    assert resolve_impl('auto', torch.zeros(1, 1, 1, device='cuda')) == \
        'torch'


@pytest.mark.parametrize('mode', ['micro', 'large'])
def test_bcn_cuda_matches_cpu(mode):
    torch.manual_seed(0)
    cpu = _randomized(BCN(64, num_groups=8, mode=mode, update_rate=0.1))
    gpu = copy.deepcopy(cpu).cuda()
    xs = [torch.randn(2, 64, 9, 11) * 2 + 1 for _ in range(3)]
    out_c, grad_c = _run(cpu.train(), xs)
    out_g, grad_g = _run(gpu.train(), [x.cuda() for x in xs])
    for a, b in zip(out_c + grad_c, out_g + grad_g):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    for (name, p_c), p_g in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(p_g.grad.cpu(), p_c.grad, rtol=1e-4,
                                   atol=1e-4, msg=name)
    for (name, b_c), b_g in zip(cpu.named_buffers(), gpu.buffers()):
        torch.testing.assert_close(b_g.cpu(), b_c, rtol=1e-5, atol=1e-6,
                                   msg=name)
    x = torch.randn(1, 64, 5, 5)
    torch.testing.assert_close(gpu.eval()(x.cuda()).cpu(), cpu.eval()(x),
                               rtol=1e-4, atol=1e-4)


def test_layers_under_autocast_stay_finite_and_close():
    torch.manual_seed(0)
    conv = WSConv2d(16, 32, 3, padding=1).cuda()
    norm = BCN(32, num_groups=8).cuda().train()
    norm_amp = copy.deepcopy(norm)  # same estimates before the update
    x = torch.randn(2, 16, 20, 20, device='cuda')
    ref = norm(conv(x)).float()
    with torch.autocast('cuda', dtype=torch.float16):
        out = norm_amp(conv(x))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
