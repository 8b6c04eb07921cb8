"""EvoNorm-B0 and EvoNorm-S0 (Liu et al. 2020): normalization and activation
in one layer, for (N, C, *) inputs, with per-channel gamma, beta, v::

    B0:  y = x / max(sqrt(var_b(x) + eps), v * x + sqrt(var_i(x) + eps))
             * gamma + beta
    S0:  y = x * sigmoid(v * x) / sqrt(var_g(x) + eps) * gamma + beta

var_b is the batch variance per channel over (N, *) — in training the
current batch's (with gradient; across ranks the variance of all ranks'
samples, through a differentiable all-reduce), in eval the running variance
updated with ``momentum``; var_i is the per-sample, per-channel variance over
(*); var_g the per-sample variance over each of ``num_groups`` channel
groups. In mmdet / mmseg ResNets an activation still follows each norm layer.
"""
from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.fx
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ...compat.recompute import in_backward
from ...distributed.sync import get_world_size
from ._checks import check_input, check_num_features, check_num_groups
from ._modes import StatsMode, empty_output_of, fx_leaf_call


class _EvoNormBase(nn.Module):
    _abbr_ = 'evonorm'

    def __init__(self, num_features: int, eps: float):
        super().__init__()
        name = type(self).__name__
        check_num_features(name, num_features)
        if not eps > 0:
            raise ValueError(f'{name}: eps={eps!r} is not valid; it must be '
                             '> 0')
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def _shape(self, x: Tensor) -> List[int]:
        return [1, -1] + [1] * (x.dim() - 2)

    def _empty(self, x: Tensor) -> Tensor:
        return empty_output_of(x, [self.weight, self.bias, self.v])


@MODELS.register_module('EvoNormB0')
class EvoNormB0(_EvoNormBase):
    """EvoNorm-B0 (batch-dependent); see the module docstring.

    Args:
        num_features (int): Channels C.
        eps (float): Default: 1e-5.
        momentum (float): Rate of the running-variance update. Default: 0.1.
        sync (bool): Use all ranks' samples for the batch variance when
            torch.distributed is initialized. Default: True.
    """

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.1, sync: bool = True):
        super().__init__(num_features, eps)
        if not 0 < momentum <= 1:
            raise ValueError(f'EvoNormB0: momentum={momentum!r} is not '
                             'valid; it must be in (0, 1]')
        self.momentum = momentum
        self.sync = sync
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked',
                             torch.tensor(0, dtype=torch.long))
        self.stats_mode = StatsMode()

    def batch_variance(self, x3: Tensor) -> Tuple[Tensor, Tensor]:
        """Biased variance over (N, L), with gradient, and the count (a
        scripted layer uses its own process's samples only)."""
        n, c, length = x3.shape
        sums = torch.cat([x3.sum((0, 2)), x3.square().sum((0, 2)),
                          x3.new_full((1, ), float(n * length))])
        if not torch.jit.is_scripting():
            if self.sync and get_world_size() > 1:
                sums = dist.nn.functional.all_reduce(sums)
        total = sums[-1]
        mean = sums[:c] / total
        return (sums[c:2 * c] / total - mean * mean).clamp(min=0), total

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            if isinstance(x, torch.fx.Proxy):
                return fx_leaf_call(self, x)
        check_input('EvoNormB0', x, self.num_features)
        if not torch.jit.is_scripting():
            if torch.is_autocast_enabled(x.device.type):
                # a batch statistic, like BatchNorm's: computed in float32
                with torch.autocast(x.device.type, enabled=False):
                    return self.forward(x.float())
        if x.numel() == 0:
            return self._empty(x)
        x3 = x.reshape(x.shape[0], self.num_features, -1)
        if self.training and self.stats_mode.training:
            var_b, total = self.batch_variance(x3)
            recompute = False
            if not torch.jit.is_scripting():
                recompute = in_backward()
            if not recompute:  # not a checkpointing recomputation
                with torch.no_grad():
                    unbiased = var_b * total / (total - 1).clamp(min=1)
                    self.running_var.lerp_(
                        unbiased.to(self.running_var.dtype), self.momentum)
                    self.num_batches_tracked.add_(1)
        else:
            var_b = self.running_var
        shape = self._shape(x)
        var_i = x3.var(2, unbiased=False).view(
            list(x.shape[:2]) + shape[2:])
        denom = torch.maximum(torch.sqrt(var_b + self.eps).view(shape),
                              self.v.view(shape) * x +
                              torch.sqrt(var_i + self.eps))
        return x / denom * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'momentum={self.momentum}, sync={self.sync}')


@MODELS.register_module('EvoNormS0')
class EvoNormS0(_EvoNormBase):
    """EvoNorm-S0 (batch-independent); see the module docstring.

    Args:
        num_features (int): Channels C.
        num_groups (int): Groups of the variance; must divide C. Default: 32.
        eps (float): Default: 1e-5.
    """

    def __init__(self, num_features: int, num_groups: int = 32,
                 eps: float = 1e-5):
        super().__init__(num_features, eps)
        check_num_groups('EvoNormS0', num_features, num_groups)
        self.num_groups = num_groups

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            if isinstance(x, torch.fx.Proxy):
                return fx_leaf_call(self, x)
        check_input('EvoNormS0', x, self.num_features)
        if x.numel() == 0:
            return self._empty(x)
        n = x.shape[0]
        shape = self._shape(x)
        var_g = x.reshape(n, self.num_groups, -1).var(2, unbiased=False)
        std_c = torch.sqrt(var_g + self.eps).repeat_interleave(
            self.num_features // self.num_groups, 1)
        gated = x * torch.sigmoid(self.v.view(shape) * x)
        return gated / std_c.view(list(x.shape[:2]) + shape[2:]) * \
            self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, num_groups={self.num_groups}, '
                f'eps={self.eps}')
