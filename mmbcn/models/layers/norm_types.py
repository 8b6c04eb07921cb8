"""What counts as a normalization layer: torch's norms and mmbcn's."""
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

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
