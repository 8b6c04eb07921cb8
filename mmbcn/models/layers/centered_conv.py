"""Weight centralization (Yan et al. 2020, with MABN): a convolution whose
every output filter ``W[o]`` (shape ``C_in/groups x kH x kW``) has its mean
subtracted before use::

    W_c[o] = W[o] - mean(W[o])

A centered filter sums to zero, so it maps a constant input to zero: the
output mean is (roughly) the input's spatial mean removed, which lets a
following norm drop its mean statistic (MABN normalizes by the second moment
only). In eval the centered weight is fixed: :meth:`CenteredConv2d.to_conv`
returns the ``nn.Conv2d`` that computes the same.
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor


def center_weight(weight: Tensor) -> Tensor:
    """``weight`` with each output filter's mean subtracted."""
    return weight - weight.mean(list(range(1, weight.dim())),
                                keepdim=True)


@MODELS.register_module('CenteredConv2d')
class CenteredConv2d(nn.Conv2d):
    """``nn.Conv2d`` with weight centralization (same arguments); use as
    ``conv_cfg=dict(type='CenteredConv2d')``. The bias (if any) is not
    centered; before a norm, mmcv's ``ConvModule(bias='auto')`` drops it."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, center_weight(self.weight), self.bias)

    def to_conv(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` holding the centered weight (same output)."""
        plain = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size,
            stride=self.stride, padding=self.padding, dilation=self.dilation,
            groups=self.groups, bias=self.bias is not None,
            padding_mode=self.padding_mode, device=self.weight.device,
            dtype=self.weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(center_weight(self.weight.double()).to(
                self.weight.dtype))
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain.train(self.training)
