"""Memory formats and autocast: channels_last input gives channels_last
output (as BatchNorm and GroupNorm), every layer runs under CPU bfloat16
autocast."""
import pytest
import torch
import torch.nn as nn

from mmbcn.models.layers import ScaledWSConv2d, WSConv2d
from norm_cases import NORMS, build_norm

CL = torch.channels_last


def test_torch_norms_keep_channels_last():  # the contract
    x = torch.randn(2, 8, 5, 6).to(memory_format=CL)
    for ref in (nn.BatchNorm2d(8), nn.GroupNorm(4, 8)):
        assert ref(x).is_contiguous(memory_format=CL)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('case', sorted(NORMS))
def test_channels_last_in_channels_last_out(case, training):
    a, b = build_norm(case, 8), build_norm(case, 8)
    a.train(training)
    b.train(training)
    x = torch.randn(2, 8, 5, 6) * 2 + 1
    x_cl = x.clone().to(memory_format=CL).requires_grad_()
    x = x.requires_grad_()
    y, y_cl = a(x), b(x_cl)
    assert y_cl.is_contiguous(memory_format=CL)
    assert y_cl._base is None  # in-place activations allowed
    torch.testing.assert_close(y_cl, y, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    y_cl.backward(g)
    torch.testing.assert_close(x_cl.grad, x.grad, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-4,
                                   msg=name)


@pytest.mark.parametrize('conv', [WSConv2d, ScaledWSConv2d])
def test_ws_convs_keep_channels_last(conv):
    layer = conv(8, 4, 3, padding=1)
    x = torch.randn(2, 8, 5, 6).to(memory_format=CL)
    assert layer(x).is_contiguous(memory_format=CL)


@pytest.mark.parametrize('case', sorted(NORMS))
def test_bfloat16_autocast_on_cpu(case):
    """Under autocast each norm runs (EvoNorm-B0 used to fail in its running
    variance update) and gives the float32 result to bfloat16 precision."""
    a, b = build_norm(case, 8), build_norm(case, 8)
    conv = nn.Conv2d(3, 8, 3)
    x = torch.randn(2, 3, 9, 9)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        h = conv(x)
        assert h.dtype == torch.bfloat16
        y = a(h)
    y.float().sum().backward()
    expected = b(h.detach().float())
    expected.sum().backward()  # MABN writes a buffer in the backward
    torch.testing.assert_close(y.float(), expected, rtol=2e-2, atol=2e-2)
    for (name, buf), ref in zip(a.named_buffers(), b.buffers()):
        assert buf.dtype == ref.dtype, name
        torch.testing.assert_close(buf.float(), ref.float(), rtol=1e-2,
                                   atol=1e-2, msg=name)
