"""What counts as a normalization layer: torch's norms and mmbcn's."""
from typing import Iterator, Tuple

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ._modes import StatsMode
from .batch_renorm import BatchRenorm
from .bcn import BCN
from .channel_affine import ChannelAffine
from .cross_iteration_bn import CrossIterationBN
from .evonorm import EvoNormB0, EvoNormS0
from .frn import FRN
from .mabn import MABN
from .prepbn import PRepBN, RepBN

#: mmbcn's normalization layers (ChannelAffine stands in for a norm in the
#: normalizer-free 'sws' scheme)
MMBCN_NORM_TYPES = (BCN, ChannelAffine, EvoNormB0, EvoNormS0, FRN,
                    BatchRenorm, MABN, CrossIterationBN, RepBN,
                    PRepBN)

#: every module type whose parameters count as normalization parameters
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm,
              *MMBCN_NORM_TYPES)


def is_norm_layer(module: nn.Module) -> bool:
    """A normalization layer of :data:`NORM_TYPES`, not the
    :class:`~mmbcn.models.layers._modes.StatsMode` switch inside one (a
    ``_BatchNorm`` only so that the backbones' ``norm_eval`` reaches it)."""
    return isinstance(module, NORM_TYPES) and \
        not isinstance(module, StatsMode)


def norm_layers(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """``(name, module)`` of every normalization layer of ``model``."""
    return ((n, m) for n, m in model.named_modules() if is_norm_layer(m))
