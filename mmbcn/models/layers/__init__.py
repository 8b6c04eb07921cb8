from .bcn import BCN
from ._modes import StatsMode
from .channel_affine import ChannelAffine
from .evonorm import EvoNormB0, EvoNormS0
from .norm_types import MMBCN_NORM_TYPES, NORM_TYPES
from .scaled_ws_conv import RELU_GAMMA, ScaledWSConv2d
from .ws_conv import WSConv2d, standardize_weight

__all__ = ['BCN', 'ChannelAffine', 'EvoNormB0', 'EvoNormS0',
           'MMBCN_NORM_TYPES', 'NORM_TYPES', 'RELU_GAMMA', 'ScaledWSConv2d',
           'StatsMode', 'WSConv2d', 'standardize_weight']
