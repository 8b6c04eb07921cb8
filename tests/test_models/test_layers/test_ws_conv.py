"""WSConv2d against a plain reference written from the WS formulas."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer

from mmbcn import WSConv2d


def reference_ws(weight, eps, eps_mode):
    w = weight.reshape(weight.shape[0], -1)
    mean = w.mean(1, keepdim=True)
    if eps_mode == 'var':
        var = ((w - mean) ** 2).mean(1, keepdim=True)
        w_hat = (w - mean) / torch.sqrt(var + eps)
    else:
        std = torch.sqrt(((w - mean) ** 2).sum(1, keepdim=True) /
                         (w.shape[1] - 1))
        w_hat = (w - mean) / (std + eps)
    return w_hat.reshape(weight.shape)


@pytest.mark.parametrize('eps_mode', ['var', 'std'])
@pytest.mark.parametrize('groups, stride, dilation, padding_mode', [
    (1, 1, 1, 'zeros'), (2, 2, 1, 'reflect'), (4, 1, 2, 'circular')])
def test_matches_reference(eps_mode, groups, stride, dilation, padding_mode):
    torch.manual_seed(0)
    conv = WSConv2d(8, 12, 3, stride=stride, padding=2, dilation=dilation,
                    groups=groups, padding_mode=padding_mode,
                    eps_mode=eps_mode, eps=1e-3)
    x = torch.randn(2, 8, 9, 10)
    w_hat = reference_ws(conv.weight, 1e-3, eps_mode)
    padded = x if padding_mode == 'zeros' else F.pad(x, (2, 2, 2, 2),
                                                     mode=padding_mode)
    expected = F.conv2d(padded, w_hat, conv.bias, stride,
                        2 if padding_mode == 'zeros' else 0, dilation,
                        groups)
    torch.testing.assert_close(conv(x), expected, rtol=1e-4, atol=1e-5)
    flat = conv.standardized_weight().reshape(12, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(12), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize('eps_mode', ['var', 'std'])
def test_gradcheck_float64(eps_mode):
    torch.manual_seed(1)
    conv = WSConv2d(4, 6, 3, padding=1, eps_mode=eps_mode).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = conv.weight.detach().clone().requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True)

    def fn(inp, weight, bias):
        return torch.func.functional_call(conv, {'weight': weight,
                                                 'bias': bias}, (inp,))

    assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-5)


def test_constant_filter_has_finite_gradient_with_var_mode():
    conv = WSConv2d(2, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.5)
    conv(torch.randn(1, 2, 5, 5)).sum().backward()
    assert torch.isfinite(conv.weight.grad).all()


def test_statistics_in_float32_under_autocast():
    torch.manual_seed(2)
    conv = WSConv2d(16, 8, 3, padding=1)
    x = torch.randn(1, 16, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        w_hat = conv.standardized_weight()
        y = conv(x)
    assert w_hat.dtype == torch.float32
    torch.testing.assert_close(w_hat, reference_ws(conv.weight, 1e-5, 'var'))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), conv(x), rtol=5e-2, atol=0.15)
    half = WSConv2d(4, 4, 1).to(torch.bfloat16)
    assert half.standardized_weight().dtype == torch.bfloat16


def test_build_conv_layer_and_conv_module():
    conv = build_conv_layer(dict(type='WSConv2d', eps_mode='std'), 3, 8, 3,
                            padding=1)
    assert isinstance(conv, WSConv2d) and conv.eps_mode == 'std'
    module = ConvModule(3, 8, 3, padding=1, conv_cfg=dict(type='WSConv2d'),
                        norm_cfg=dict(type='GN', num_groups=4))
    assert isinstance(module.conv, WSConv2d)
    assert module.conv.bias is None  # bias='auto' drops it before a norm
    module = ConvModule(3, 8, 3, padding=1, conv_cfg=dict(type='WSConv2d'),
                        padding_mode='reflect')
    assert module.conv.bias is not None  # no norm: bias kept
    y = module(torch.randn(2, 3, 6, 6))
    assert y.shape == (2, 8, 6, 6) and (y >= 0).all()  # ReLU by default


@pytest.mark.parametrize('kwargs, words', [
    (dict(eps_mode='sqrt'), ["eps_mode='sqrt'", "'var'", "'std'"]),
    (dict(eps=-1.0), ['eps=-1.0', '>= 0']),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        WSConv2d(3, 4, 3, **kwargs)
    for word in words:
        assert word in str(err.value)
