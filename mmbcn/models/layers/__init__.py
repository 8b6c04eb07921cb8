from ._modes import StatsMode
from .batch_renorm import BatchRenorm
from .bcn import BCN
from .centered_conv import CenteredConv2d, center_weight
from .channel_affine import ChannelAffine
from .cross_iteration_bn import CrossIterationBN, link_cbn_convs
from .evonorm import EvoNormB0, EvoNormS0
from .frn import FRN
from .mabn import MABN
from .norm_types import (MMBCN_NORM_TYPES, NORM_TYPES, is_norm_layer,
                         norm_layers)
from .prepbn import PRepBN, RepBN
from .scaled_ws_conv import RELU_GAMMA, ScaledWSConv2d
from .ws_conv import WSConv2d, standardize_weight

__all__ = ['BatchRenorm', 'BCN', 'CenteredConv2d', 'ChannelAffine',
           'CrossIterationBN', 'EvoNormB0', 'EvoNormS0', 'FRN', 'MABN',
           'MMBCN_NORM_TYPES', 'NORM_TYPES', 'PRepBN', 'RELU_GAMMA', 'RepBN',
           'ScaledWSConv2d', 'StatsMode', 'WSConv2d', 'center_weight',
           'is_norm_layer', 'link_cbn_convs', 'norm_layers',
           'standardize_weight']
