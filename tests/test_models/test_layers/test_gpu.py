"""The GPU path of the layers, checked against the CPU path.

On CUDA, BCN's micro-batch step runs on Triton kernels where Triton is
installed (float32), else on torch ops (``impl='torch'``, what ``'auto'``
resolves to there); the CPU result (C++ kernels where built) is the
reference. Skipped on machines without CUDA.
"""
import copy

import pytest
import torch

from mmbcn import BCN, WSConv2d
from mmbcn.models.functional.bcn import resolve_impl
from mmbcn.models.functional.bcn_triton import has_triton
from triton_cases import (FUNCTIONAL_CASES, LAYER_CASES, check_functional,
                          check_layer)

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


needs_triton = pytest.mark.skipif(not has_triton(),
                                  reason='needs the triton package')


@needs_triton
@pytest.mark.parametrize('case', FUNCTIONAL_CASES)
def test_triton_kernels_match_torch_on_cuda(case):
    check_functional('cuda', *case)


@needs_triton
@pytest.mark.parametrize('case', LAYER_CASES)
def test_triton_layer_matches_cpu_layer(case):
    check_layer('cuda', *case)


@pytest.mark.parametrize('mode,affine', [('micro', 'group'),
                                         ('micro', 'channel'),
                                         ('large', 'group')])
def test_bcn_cuda_matches_cpu(mode, affine):
    torch.manual_seed(0)
    cpu = _randomized(BCN(64, num_groups=8, mode=mode, affine=affine,
                          update_rate=0.1))
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


@pytest.mark.parametrize('eps_mode', ['var', 'std'])
def test_ws_conv_cuda_matches_cpu(eps_mode, monkeypatch):
    # cuDNN convolutions default to TF32 (10-bit mantissa): compare in fp32
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    torch.manual_seed(0)
    cpu = WSConv2d(16, 32, 3, padding=1, eps_mode=eps_mode)
    gpu = copy.deepcopy(cpu).cuda()
    xs = [torch.randn(2, 16, 12, 10)]
    out_c, grad_c = _run(cpu, xs)
    out_g, grad_g = _run(gpu, [x.cuda() for x in xs])
    for a, b in zip(out_c + grad_c, out_g + grad_g):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.weight.grad.cpu(), cpu.weight.grad,
                               rtol=1e-4, atol=1e-4)
