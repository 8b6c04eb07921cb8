"""Contracts every mmbcn normalization layer keeps, as torch's norms do:
shared by the per-layer tests."""
import copy
import io

import torch


def randomize(module, seed=5):
    """Parameters away from their initial values (ones / zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
    return module


def assert_empty_batch(layer, shape):
    """An empty batch gives an empty output (and gradient) without error."""
    x = torch.randn(0, *shape[1:], requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape


def assert_keeps_channels_last(layer, shape):
    x = torch.randn(*shape).to(memory_format=torch.channels_last)
    y = layer(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, layer(x.contiguous()))


def assert_eval_keeps_buffers(layer, x):
    """Eval never updates a buffer, and gives the same output twice."""
    layer.eval()
    before = copy.deepcopy(layer.state_dict())
    y1, y2 = layer(x), layer(x)
    torch.testing.assert_close(y1, y2)
    for k, v in layer.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def assert_state_round_trip(layer, fresh, x):
    """Save / load the state dict into ``fresh``: every buffer and
    parameter comes back and the eval outputs agree exactly."""
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    for k, v in layer.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0,
                                   msg=k)
    layer.eval()
    fresh.eval()
    torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)
