"""Under autocast the statistics layers run in float32, as GroupNorm does:
a half-precision sum of squares overflows for activations above ~256."""
import torch
from torch import Tensor


def autocast_on(x: Tensor) -> bool:
    """Whether autocast is enabled for ``x``'s device type."""
    return torch.is_autocast_enabled(x.device.type)


def float32_off_autocast(fn, x: Tensor, *args):
    """``fn(x.float(), *args)`` with autocast disabled (float32 result)."""
    with torch.autocast(x.device.type, enabled=False):
        return fn(x.float(), *args)
