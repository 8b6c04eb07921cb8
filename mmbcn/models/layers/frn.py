"""Filter Response Normalization with a Thresholded Linear Unit (Singh &
Krishnan 2020), for (N, C, *) inputs, per-channel gamma, beta, tau::

    nu2 = mean_{*}(x ** 2)                   (per sample and channel)
    y   = gamma * x / sqrt(nu2 + eps) + beta
    z   = max(y, tau)                        (TLU; tlu=False: z = y)

No batch statistics: training and eval compute the same thing, a sample's
output does not depend on the other samples (nothing to synchronize across
ranks), and there is no running buffer. With ``learnable_eps=True`` the
epsilon is ``eps + |eps_l|`` with a learned per-channel ``eps_l``
(initialized to ``eps_l_init``; the paper learns it for layers with a 1x1
spatial extent, where a fixed eps makes the layer a sign function).
For a 2-D (N, C) input, nu2 = x ** 2.

Paper setting: eps = 1e-6, gamma = 1, beta = 0, tau = 0 at initialization;
FRN+TLU replaces each BN+ReLU pair (the TLU is the activation). Note that
mmcv's ``build_norm_layer`` passes ``eps=1e-5`` unless the config gives
``eps``: write ``norm_cfg=dict(type='FRN', eps=1e-6)`` for the paper's value.

With a ReLU after the layer (mmdet / mmseg ResNets, ``ConvModule`` with
``act_cfg=dict(type='ReLU')``), the pair computes
``max(max(y, tau), 0) = max(y, max(tau, 0))``: a TLU whose threshold cannot
go below 0; while ``tau < 0`` the ReLU hides it and tau gets no gradient
where it would matter. That is not the paper's FRN+TLU. To train the paper's
form, the activation after the norm must be the identity
(``act_cfg=None``); with the activation kept, ``tlu=False`` (FRN then ReLU)
is the honest name for what runs.

The eval form is not an affine map of x (it divides by a per-sample
statistic), so FRN does not fold into the preceding convolution.
"""
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ._autocast import autocast_on, float32_off_autocast
from ._checks import check_input, check_num_features
from ._modes import fx_leaf_call


def filter_response_norm(x: Tensor, weight: Tensor, bias: Tensor,
                         eps: Tensor, tau=None) -> Tensor:
    """FRN (and TLU if ``tau`` is given) of an (N, C, *) input; ``weight``,
    ``bias``, ``tau`` of shape (C,), ``eps`` a scalar or a (C,) tensor."""
    shape = (1, -1) + (1, ) * (x.dim() - 2)
    dims = tuple(range(2, x.dim()))
    nu2 = x.square().mean(dims, keepdim=True) if dims else x.square()
    if torch.is_tensor(eps) and eps.dim():
        eps = eps.view(shape)
    y = x * torch.rsqrt(nu2 + eps) * weight.view(shape) + bias.view(shape)
    if tau is not None:
        # max(y, tau) as tau + relu(y - tau): the same value, and a backward
        # that is a cheap threshold (torch.maximum's splits ties with masks)
        tau = tau.view(shape)
        y = tau + F.relu(y - tau)
    return y


@MODELS.register_module('FRN')
class FRN(nn.Module):
    """Filter Response Normalization (+ TLU); see the module docstring.

    Args:
        num_features (int): Channels C of the (N, C, *) input.
        eps (float): The fixed epsilon (> 0). Default: 1e-6 (the paper's).
        learnable_eps (bool): Use ``eps + |eps_l|`` with a learned
            per-channel ``eps_l``. Default: False.
        eps_l_init (float): Initial ``eps_l`` (not 0: ``|.|`` has zero
            gradient there). Default: 1e-4.
        tlu (bool): Apply the TLU ``max(y, tau)``. Default: True.

    Parameters: ``weight`` (gamma), ``bias`` (beta), ``tau`` (if ``tlu``),
    ``eps_l`` (if ``learnable_eps``), each of shape (C,).
    """
    _abbr_ = 'frn'

    def __init__(self, num_features: int, eps: float = 1e-6,
                 learnable_eps: bool = False, eps_l_init: float = 1e-4,
                 tlu: bool = True):
        super().__init__()
        check_num_features('FRN', num_features)
        if not eps > 0:
            raise ValueError(f'FRN: eps={eps!r} is not valid; it must be > 0')
        self.num_features = num_features
        self.eps = eps
        self.learnable_eps = learnable_eps
        self.tlu = tlu
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.tau = nn.Parameter(torch.zeros(num_features)) if tlu else None
        self.eps_l = nn.Parameter(torch.full((num_features, ),
                                             float(eps_l_init))) \
            if learnable_eps else None

    def effective_eps(self):
        """The epsilon the layer uses: ``eps`` or ``eps + |eps_l|``."""
        if self.eps_l is None:
            return self.eps
        return self.eps + self.eps_l.abs()

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        check_input('FRN', x, self.num_features)
        if autocast_on(x):
            return float32_off_autocast(self.forward, x)
        return filter_response_norm(x, self.weight, self.bias,
                                    self.effective_eps(), self.tau)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'learnable_eps={self.learnable_eps}, tlu={self.tlu}')
