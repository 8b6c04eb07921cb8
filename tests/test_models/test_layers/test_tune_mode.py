"""Tune mode ("Efficient ConvBN Blocks for Transfer Learning and Beyond"):
mmcv's ConvModule(efficient_conv_bn_eval=True) and mmengine's
efficient_conv_bn_eval fold a frozen BatchNorm into the preceding conv on
the fly; with WS convs they must fold it into the standardized weight."""
import copy

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, fuse_conv_bn
from mmengine.model.efficient_conv_bn_eval import \
    turn_on_efficient_conv_bn_eval

import mmbcn  # noqa: F401 (registers the layers)
from mmbcn.deploy import fold_ws
from mmbcn.models.layers import ScaledWSConv2d, WSConv2d

CONVS = ('WSConv2d', 'ScaledWSConv2d')


def conv_bn(conv):
    """A WS conv + BN block whose BN has moved statistics and affine."""
    torch.manual_seed(0)
    block = ConvModule(4, 8, 3, conv_cfg=dict(type=conv),
                       norm_cfg=dict(type='BN'), act_cfg=None)
    with torch.no_grad():
        block.bn.weight.uniform_(-2, 2)
        block.bn.bias.uniform_(-1, 1)
    block.train()
    for _ in range(3):
        block(torch.randn(4, 4, 8, 8) * 3 + 1)
    block.eval()
    return block


def fine_tune_step(model, x, params):
    y = model(x)
    grads = torch.autograd.grad((y * y.detach().cos()).sum(), params)
    return y.detach(), grads


@pytest.mark.parametrize('conv', CONVS)
def test_mmcv_conv_module_efficient_conv_bn_eval(conv):
    block = conv_bn(conv)
    fused = copy.deepcopy(block)
    fused.turn_on_efficient_conv_bn_eval(True)
    x = torch.randn(2, 4, 8, 8)
    y, grads = fine_tune_step(block, x, list(block.parameters()))
    y_f, grads_f = fine_tune_step(fused, x, list(fused.parameters()))
    torch.testing.assert_close(y_f, y, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads_f, grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('conv', CONVS)
def test_mmengine_efficient_conv_bn_eval(conv):
    """The runner's ``efficient_conv_bn_eval=[...]`` option: fx-traces the
    named modules and fuses conv + BN pairs, the WS convs among them."""
    block = conv_bn(conv)
    model = nn.Sequential(nn.Sequential(block.conv, block.bn, nn.ReLU()))
    reference = copy.deepcopy(model)
    turn_on_efficient_conv_bn_eval(model, '0')
    assert 'efficient_conv_bn_eval' in model[0].forward.__self__.code
    x = torch.randn(2, 4, 8, 8)
    y, grads = fine_tune_step(reference, x, list(reference.parameters()))
    y_f, grads_f = fine_tune_step(model, x, list(model.parameters()))
    torch.testing.assert_close(y_f, y, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads_f, grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    # BN back in training: the plain WS conv + BN
    model.train()
    reference.train()
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('conv', CONVS)
def test_fuse_conv_bn_after_fold_ws(conv):
    """mmcv's fuse_conv_bn rewrites conv.weight, which a WS conv would
    standardize again: fold the WS convs into plain convs first."""
    block = conv_bn(conv)
    x = torch.randn(2, 4, 8, 8)
    expected = block(x)
    fused = fuse_conv_bn(fold_ws(block))
    assert isinstance(fused.bn, nn.Identity)
    assert type(fused.conv) is nn.Conv2d
    torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cls', [WSConv2d, ScaledWSConv2d])
def test_conv_forward_refuses_a_foreign_weight(cls):
    conv = cls(4, 8, 3, bias=False)
    x = torch.randn(1, 4, 5, 5)
    for weight in (torch.randn_like(conv.weight), torch.randn(8, 4, 1, 1)):
        with pytest.raises(ValueError, match='per-filter rescaling'):
            conv._conv_forward(x, weight, None)
    # its own weight, and a rescaling of it, are accepted
    scale = torch.linspace(-2, 2, 8).view(8, 1, 1, 1)
    torch.testing.assert_close(
        conv._conv_forward(x, conv.weight * scale, None),
        conv(x) * scale.view(1, 8, 1, 1), rtol=1e-4, atol=1e-5)
