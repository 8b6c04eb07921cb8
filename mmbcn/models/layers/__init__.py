from .bcn import BCN
from .ws_conv import WSConv2d, standardize_weight

__all__ = ['BCN', 'WSConv2d', 'standardize_weight']
