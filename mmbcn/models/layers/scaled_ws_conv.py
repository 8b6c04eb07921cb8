"""Scaled Weight Standardization (NF-ResNets, Brock et al. 2021).

Each output filter is standardized, scaled by 1 / sqrt(fan_in) so that a
unit-variance input gives a unit-variance output, multiplied by a learnable
per-filter gain and by a fixed ``gamma`` that undoes the variance change of
the activation that follows (sqrt(2 / (1 - 1/pi)) ~= 1.7139 for ReLU)::

    W_hat[o] = gamma * gain[o] * (W[o] - mean(W[o]))
               / (sqrt(var(W[o]) + eps) * sqrt(fan_in))

with ``fan_in = C_in / groups * kH * kW`` and the biased variance.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from .ws_conv import WSConvMixin

#: gamma of a ReLU: 1 / std of relu(z), z ~ N(0, 1), for unit second moment
RELU_GAMMA = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))


def scaled_ws_weight(weight: torch.Tensor, gain: torch.Tensor, gamma: float,
                     eps: float) -> torch.Tensor:
    """The weight :class:`ScaledWSConv2d` convolves with (module docstring),
    in ``weight``'s dtype (float32 under autocast)."""
    with torch.autocast(device_type=weight.device.type, enabled=False):
        w_hat = scaled_ws_rows(weight, gain, gamma, eps)
    if torch.is_autocast_enabled(weight.device.type):
        return w_hat
    return w_hat.to(weight.dtype)


def scaled_ws_rows(weight: torch.Tensor, gain: torch.Tensor, gamma: float,
                   eps: float) -> torch.Tensor:
    """:func:`scaled_ws_weight` in at least float32, without the autocast
    switch (TorchScript compiles it)."""
    out_channels = weight.shape[0]
    fan_in = weight[0].numel()
    dtype = torch.promote_types(weight.dtype, torch.float32)
    scale = gain.to(dtype) * (gamma / math.sqrt(fan_in))
    flat = F.batch_norm(
        weight.to(dtype).reshape(1, out_channels, -1), None, None,
        weight=scale, training=True, momentum=0., eps=eps)
    return flat.reshape(weight.shape)


@MODELS.register_module('ScaledWSConv2d')
class ScaledWSConv2d(WSConvMixin, nn.Conv2d):
    """``nn.Conv2d`` with Scaled Weight Standardization (module docstring).

    Accepts every ``nn.Conv2d`` argument plus:

    Args:
        gamma (float): Fixed activation gain. Default: ``RELU_GAMMA``.
        eps (float): Added to the filter variance. Default: 1e-5.
        gain_init (float): Initial value of the per-filter gain. Default: 1.
    """

    def __init__(self, *args, gamma: float = RELU_GAMMA, eps: float = 1e-5,
                 gain_init: float = 1.0, **kwargs):
        if eps < 0:
            raise ValueError(f'eps={eps!r} is not valid; it must be >= 0')
        if not gamma > 0:
            raise ValueError(f'gamma={gamma!r} is not valid; it must be > 0')
        super().__init__(*args, **kwargs)
        self.gamma = gamma
        self.eps = eps
        self.gain = nn.Parameter(
            torch.full((self.out_channels, ), float(gain_init)))
        self._init_folding()

    @torch.jit.unused
    def standardized_weight(self) -> torch.Tensor:
        if self.ws_folded:
            return self.weight
        return scaled_ws_weight(self.weight, self.gain, self.gamma, self.eps)

    def scripted_weight(self) -> torch.Tensor:
        if self.ws_folded:
            return self.weight
        return scaled_ws_rows(self.weight, self.gain, self.gamma,
                              self.eps).to(self.weight.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + \
            f', gamma={self.gamma:.4f}, eps={self.eps}' + \
            (', folded' if self.ws_folded else '')
