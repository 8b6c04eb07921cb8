"""Weight-Standardized 2-D convolution.

Each output filter ``W[o]`` of shape ``(C_in / groups, kH, kW)`` is standardized
before the convolution::

    eps_mode='var' (default):  W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps)
    eps_mode='std':            W_hat[o] = (W[o] - mean(W[o])) / (std(W[o]) + eps)

``'var'`` uses the biased variance with eps under the root; its gradient stays
finite even for a constant filter. ``'std'`` uses the unbiased standard
deviation with eps added outside the root, as mmcv's ``ConvWS`` and the original
WS code do (use it to load weights trained that way unchanged). The statistics
are computed in at least float32, also under autocast.
"""
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

EPS_MODES = ('var', 'std')


def standardize_weight(weight: torch.Tensor, eps: float = 1e-5,
                       eps_mode: str = 'var') -> torch.Tensor:
    """Return ``weight`` with every output filter standardized.

    The result is in float32 for half-precision weights (else their dtype).
    """
    if eps_mode not in EPS_MODES:
        raise ValueError(f'eps_mode={eps_mode!r} is not valid; '
                         f'choose one of {EPS_MODES}')
    out_channels = weight.shape[0]
    with torch.autocast(device_type=weight.device.type, enabled=False):
        dtype = torch.promote_types(weight.dtype, torch.float32)
        flat = weight.to(dtype).reshape(out_channels, -1)
        if eps_mode == 'var':
            # layer_norm over each row of the (C_out, fan_in) view is one
            # fused kernel (forward and backward) for the mean, the biased
            # variance and the normalization, each row read in cache.
            flat = F.layer_norm(flat, (flat.shape[1],), eps=eps)
        else:
            std, mean = torch.std_mean(flat, dim=1, keepdim=True)
            flat = (flat - mean) / (std + eps)
    return flat.reshape(weight.shape)


def ws_conv_weight(weight: torch.Tensor, eps: float,
                   eps_mode: str) -> torch.Tensor:
    """The weight :class:`WSConv2d` convolves with: ``weight`` standardized,
    in its dtype (in float32 under autocast, which casts it for the
    convolution). One call under ``torch.fx`` tracing (wrapped below)."""
    w_hat = standardize_weight(weight, eps, eps_mode)
    if torch.is_autocast_enabled(weight.device.type):
        return w_hat
    return w_hat.to(weight.dtype)


# traced as one call_function node: its autocast query needs a real tensor
torch.fx.wrap('ws_conv_weight')


@MODELS.register_module('WSConv2d')
class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` with Weight Standardization (see the module docstring).

    Accepts every ``nn.Conv2d`` argument plus:

    Args:
        eps (float): Added to the variance (``'var'``) or the standard
            deviation (``'std'``). Default: 1e-5.
        eps_mode (str): ``'var'`` or ``'std'``. Default: ``'var'``.
    """

    def __init__(self, *args, eps: float = 1e-5, eps_mode: str = 'var',
                 **kwargs):
        if eps_mode not in EPS_MODES:
            raise ValueError(f'eps_mode={eps_mode!r} is not valid; '
                             f'choose one of {EPS_MODES}')
        if eps < 0:
            raise ValueError(f'eps={eps!r} is not valid; it must be >= 0')
        super().__init__(*args, **kwargs)
        self.eps = eps
        self.eps_mode = eps_mode

    def standardized_weight(self) -> torch.Tensor:
        return ws_conv_weight(self.weight, self.eps, self.eps_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + \
            f', eps={self.eps}, eps_mode={self.eps_mode!r}'
