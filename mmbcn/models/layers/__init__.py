from .bcn import BCN
from .channel_affine import ChannelAffine
from .evonorm import EvoNormB0, EvoNormS0
from .scaled_ws_conv import RELU_GAMMA, ScaledWSConv2d
from .ws_conv import WSConv2d, standardize_weight

__all__ = ['BCN', 'ChannelAffine', 'EvoNormB0', 'EvoNormS0', 'RELU_GAMMA',
           'ScaledWSConv2d', 'WSConv2d', 'standardize_weight']
