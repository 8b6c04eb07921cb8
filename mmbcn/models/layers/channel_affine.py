"""A per-channel affine in a norm layer's place (normalizer-free networks).

``y = weight[c] * x + bias[c]``: no statistics. With Scaled WS convs and
mmdet's zero-initialized last affine of every residual block
(``zero_init_residual``), a ResNet starts as an identity map per block, the
SkipInit recipe for training without normalization.
"""
import torch
import torch.fx
import torch.nn as nn
from mmengine.registry import MODELS

from ._checks import check_input
from ._modes import fx_leaf_call


@MODELS.register_module('ChannelAffine')
class ChannelAffine(nn.Module):
    """Learnable per-channel scale and shift for (N, C, *) inputs.

    Accepts (and ignores) ``eps`` so that ``build_norm_layer`` can build it.
    """
    _abbr_ = 'affine'

    def __init__(self, num_features: int, eps: float = 0.0):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f'ChannelAffine: num_features={num_features!r}'
                             ' is not valid; it must be a positive int')
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if isinstance(x, torch.fx.Proxy):
                return fx_leaf_call(self, x)
        check_input('ChannelAffine', x, self.num_features)
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return str(self.num_features)
