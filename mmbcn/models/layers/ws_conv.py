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

from ._modes import fx_leaf_call

EPS_MODES = ('var', 'std')


def standardize_weight(weight: torch.Tensor, eps: float = 1e-5,
                       eps_mode: str = 'var') -> torch.Tensor:
    """Return ``weight`` with every output filter standardized.

    The result is in float32 for half-precision weights (else their dtype).
    """
    if eps_mode not in EPS_MODES:
        raise ValueError(f'eps_mode={eps_mode!r} is not valid; '
                         f'choose one of {EPS_MODES}')
    with torch.autocast(device_type=weight.device.type, enabled=False):
        return standardize_rows(weight, eps, eps_mode)


def standardize_rows(weight: torch.Tensor, eps: float,
                     eps_mode: str) -> torch.Tensor:
    """:func:`standardize_weight` without the argument check and autocast
    switch (TorchScript compiles it; the scripted WS convs use it)."""
    dtype = torch.promote_types(weight.dtype, torch.float32)
    flat = weight.to(dtype).reshape(weight.shape[0], -1)
    if eps_mode == 'var':
        # layer_norm over each row of the (C_out, fan_in) view is one
        # fused kernel (forward and backward) for the mean, the biased
        # variance and the normalization, each row read in cache.
        flat = F.layer_norm(flat, [flat.shape[1]], eps=eps)
    else:
        std, mean = torch.std_mean(flat, dim=1, keepdim=True)
        flat = (flat - mean) / (std + eps)
    return flat.reshape(weight.shape)


def ws_conv_weight(weight: torch.Tensor, eps: float,
                   eps_mode: str) -> torch.Tensor:
    """The weight :class:`WSConv2d` convolves with: ``weight`` standardized,
    in its dtype (in float32 under autocast, which casts it for the
    convolution)."""
    w_hat = standardize_weight(weight, eps, eps_mode)
    if torch.is_autocast_enabled(weight.device.type):
        return w_hat
    return w_hat.to(weight.dtype)


def rescale_factors(weight: torch.Tensor, own: torch.Tensor):
    """The per-output-filter factors ``c`` (shape (C_out, 1, ...), without
    gradient) with ``weight == c * own`` to float precision, or None if
    ``weight`` is no such rescaling."""
    if weight.shape != own.shape:
        return None
    with torch.no_grad():
        dims = tuple(range(1, own.dim()))
        weight, own = weight.detach(), own.detach()
        norm = own.square().sum(dims, keepdim=True).clamp(min=1e-30)
        dot = (weight * own).sum(dims, keepdim=True)
        c = dot / norm
        # |weight - c own|^2 = |weight|^2 - c <weight, own>, per filter
        total = weight.square().sum(dims, keepdim=True)
        if bool(((total - c * dot) > 1e-6 * total + 1e-30).any()):
            return None
    return c


def filter_scale(weight: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """The per-output-filter factors ``c`` (shape (C_out, 1, ...)) with
    ``weight == c * own``, with the gradient of the factors (which may
    train: BatchNorm's weight) and none through ``own``; ValueError if
    ``weight`` is not such a rescaling.
    """
    error = ValueError(
        'a WS conv convolves with its standardized weight: _conv_forward '
        'accepts its own weight or a per-filter rescaling of it (as '
        "mmcv's and mmengine's efficient_conv_bn_eval pass), got a weight of "
        f'shape {tuple(weight.shape)} that is neither')
    if rescale_factors(weight, own) is None:
        raise error
    dims = tuple(range(1, own.dim()))
    own_d = own.detach()
    norm = own_d.square().sum(dims, keepdim=True).clamp(min=1e-30)
    c = (weight * own_d).sum(dims, keepdim=True) / norm
    # weight = c * own: c's gradient must reach the factors only, so the
    # path through own inside weight is cancelled by the same path with the
    # opposite sign (value unchanged: <own, own> / norm = 1); no weight-sized
    # tensor is kept for backward beyond the parameter itself
    return c - c.detach() * ((own * own_d).sum(dims, keepdim=True) / norm - 1)


class WSConvMixin:
    """What the WS convs share: ``forward`` convolves with
    ``standardized_weight()``, traced by ``torch.fx`` as one call of the
    module; ``_conv_forward(x, weight, bias)`` called from outside (mmcv's
    ``ConvModule(efficient_conv_bn_eval=True)``, mmengine's
    ``efficient_conv_bn_eval``, which fold a frozen BatchNorm into the conv
    by passing ``conv.weight * coeff``) convolves with the standardized
    weight rescaled the same way, which is the fused conv + BN. The class
    using it defines ``standardized_weight()`` and, for
    ``torch.jit.script``, ``scripted_weight()`` (the same weight in ops
    TorchScript compiles: no autocast switch)."""

    def _init_folding(self) -> None:
        """Called at the end of ``__init__``: from here on an assigned
        weight may fold (:meth:`__setattr__`)."""
        self.ws_folded = False

    def __setattr__(self, name, value):
        """mmcv's ``fuse_conv_bn`` folds a BatchNorm into the conv before it
        by assigning ``conv.weight = nn.Parameter(conv.weight * factor)``
        (and a new bias). Under WS a per-filter rescaling of the raw weight
        is a no-op (or a sign flip), so such an assignment is taken for
        what it means: the conv turns into its folded form, a plain conv
        whose weight is the standardized weight times the factors
        (``ws_folded``: no standardization from then on). Any other
        assignment (a weight that is not a rescaling, the same weight,
        factors of 1, or any assignment during ``__init__``) is a plain
        assignment; ``load_state_dict`` copies in place and is unchanged.
        """
        if name == 'weight' and isinstance(value, nn.Parameter) and \
                self.__dict__.get('ws_folded') is False:
            own = self._parameters.get('weight')
            c = None
            if own is not None and value is not own:
                c = rescale_factors(value, own)
            if c is not None and not bool(((c - 1).abs() <= 1e-6).all()):
                with torch.no_grad():
                    w_hat = self.standardized_weight().detach()
                    folded = (w_hat * c.to(w_hat.dtype)).to(value.dtype)
                super().__setattr__(name, nn.Parameter(
                    folded, requires_grad=value.requires_grad))
                self.ws_folded = True
                return
        super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self._scripted_conv(x, self.scripted_weight())
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        return nn.Conv2d._conv_forward(self, x, self.standardized_weight(),
                                       self.bias)

    def _scripted_conv(self, x: torch.Tensor,
                       weight: torch.Tensor) -> torch.Tensor:
        """``nn.Conv2d._conv_forward`` as TorchScript compiles it."""
        if self.padding_mode != 'zeros':
            return F.conv2d(
                F.pad(x, self._reversed_padding_repeated_twice,
                      mode=self.padding_mode), weight, self.bias,
                self.stride, (0, 0), self.dilation, self.groups)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor,
                      bias) -> torch.Tensor:
        w_hat = self.standardized_weight()
        if weight is not self.weight:
            w_hat = w_hat * filter_scale(weight, self.weight).to(w_hat.dtype)
        return nn.Conv2d._conv_forward(self, x, w_hat, bias)


@MODELS.register_module('WSConv2d')
class WSConv2d(WSConvMixin, nn.Conv2d):
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
        self._init_folding()

    @torch.jit.unused
    def standardized_weight(self) -> torch.Tensor:
        if self.ws_folded:
            return self.weight
        return ws_conv_weight(self.weight, self.eps, self.eps_mode)

    def scripted_weight(self) -> torch.Tensor:
        if self.ws_folded:
            return self.weight
        return standardize_rows(self.weight, self.eps, self.eps_mode).to(
            self.weight.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + \
            f', eps={self.eps}, eps_mode={self.eps_mode!r}' + \
            (', folded' if self.ws_folded else '')
