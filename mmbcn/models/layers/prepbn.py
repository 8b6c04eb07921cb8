"""Progressive Re-parameterized BatchNorm (PRepBN, from SLAB: Guo et al.,
ICML 2024), for transformer tokens: inputs of shape (..., C), typically
(N, L, C), normalized over the last dim C.

RepBN is BatchNorm over every token of the batch plus a learned multiple of
its input; PRepBN blends it with LayerNorm by a factor lam that a schedule
moves from 1 (LayerNorm) to 0 (RepBN) over training::

    RepBN(x) = BN(x) + alpha * x              (alpha a learned scalar, init 1)
    PRepBN(x) = lam * LN(x) + (1 - lam) * RepBN(x)

BN's statistics are per channel over all tokens of the batch (the N * L
rows); in eval BN uses its running statistics, so RepBN is the affine map
``x * (w / s + alpha) + b - w * mu / s`` (s = sqrt(running_var + eps)):
exactly one BatchNorm with weight ``w + alpha * s`` and bias
``b + alpha * mu`` (:meth:`RepBN.reparameterize`), which could in turn be
folded into the adjacent linear layer (not provided here). A PRepBN
re-parameterizes only at lam = 0, the end of its schedule; with lam > 0 its
eval output still has the LayerNorm term (the authors' code evaluates RepBN
alone instead).

lam is a buffer (saved in checkpoints), set by
:class:`~mmbcn.engine.hooks.PRepBNScheduleHook`: 1 during ``warmup_iters``,
then linear to 0 at ``total_iters``, as in the paper (linear decay; the
authors' code counts the decay over the training iterations after an
optional LayerNorm-only warm-up). At lam = 1 the BN branch is skipped (its
statistics not updated), at lam = 0 the LN branch.

Across ranks (``sync=True``, torch.distributed initialized with more than
one rank) BN's statistics are those of all ranks' tokens, with the matching
backward (:func:`mmbcn.distributed.sync.sync_batch_norm`): each rank
computes what one process on the concatenated batch would. An empty batch
returns an empty output without updating statistics; with synchronization
every rank must have tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ...distributed.sync import get_world_size, sync_batch_norm
from ._autocast import autocast_on, float32_off_autocast
from ._checks import check_num_features


def _check_tokens(owner: str, x: Tensor, channels: int) -> None:
    if x.dim() < 2 or x.shape[-1] != channels:
        raise ValueError(f'{owner}: input of shape {tuple(x.shape)} is not '
                         f'valid; expected (..., {channels}) tokens')


@MODELS.register_module('RepBN')
class RepBN(nn.Module):
    """``BN(x) + alpha * x`` over tokens (..., C); see the module docstring.

    Args:
        num_features (int): Channels C (the last dim).
        eps (float): BN's epsilon. Default: 1e-5.
        momentum (float): BN's running-statistics rate, in (0, 1].
            Default: 0.1.
        sync (bool): BN statistics over all ranks' tokens when
            torch.distributed is initialized. Default: True.

    Parameters: ``alpha`` (1,) and those of ``bn`` (an ``nn.BatchNorm1d``,
    whose buffers hold the running statistics).
    """
    _abbr_ = 'repbn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.1, sync: bool = True):
        super().__init__()
        check_num_features('RepBN', num_features)
        if not eps > 0:
            raise ValueError(f'RepBN: eps={eps!r} is not valid; it must be '
                             '> 0')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f'RepBN: momentum={momentum!r} is not valid; '
                             'it must be a number in (0, 1]')
        self.num_features = num_features
        self.sync = sync
        self.alpha = nn.Parameter(torch.ones(1))
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)

    def batch_norm(self, x: Tensor) -> Tensor:
        """BN of the tokens (..., C), per channel over all tokens."""
        bn = self.bn
        rows = x.reshape(-1, self.num_features)
        # bn's own mode: a norm_eval-style freeze of the BatchNorm1d
        # (mmdet / mmseg put every _BatchNorm in eval) is honoured
        if not bn.training:
            return F.batch_norm(rows, bn.running_mean, bn.running_var,
                                bn.weight, bn.bias, False, 0.,
                                bn.eps).reshape(x.shape)
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
        if self.sync and get_world_size() > 1:
            y = sync_batch_norm(rows[:, :, None], bn.running_mean,
                                bn.running_var, bn.weight, bn.bias,
                                bn.momentum, bn.eps)
        else:
            y = F.batch_norm(rows, bn.running_mean, bn.running_var,
                             bn.weight, bn.bias, True, bn.momentum, bn.eps)
        return y.reshape(x.shape)

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens('RepBN', x, self.num_features)
        if autocast_on(x):
            return float32_off_autocast(self.forward, x)
        if x.numel() == 0:
            return x * self.alpha
        return torch.addcmul(self.batch_norm(x), x, self.alpha)

    @torch.no_grad()
    def reparameterize(self) -> nn.BatchNorm1d:
        """One ``nn.BatchNorm1d`` equal to the eval form on ``(M, C)`` rows
        (apply it to ``x.reshape(-1, C)``)."""
        bn = self.bn
        std = torch.sqrt(bn.running_var + bn.eps)
        out = nn.BatchNorm1d(self.num_features, eps=bn.eps,
                             momentum=bn.momentum,
                             device=bn.weight.device, dtype=bn.weight.dtype)
        out.running_mean.copy_(bn.running_mean)
        out.running_var.copy_(bn.running_var)
        out.num_batches_tracked.copy_(bn.num_batches_tracked)
        out.weight.copy_(bn.weight + self.alpha * std)
        out.bias.copy_(bn.bias + self.alpha * bn.running_mean)
        return out.eval()


@MODELS.register_module('PRepBN')
class PRepBN(nn.Module):
    """``lam * LN(x) + (1 - lam) * RepBN(x)``; see the module docstring.

    Args:
        num_features (int): Channels C (the last dim).
        eps (float): Epsilon of both LN and BN. Default: 1e-5 (what mmcv's
            ``build_norm_layer`` passes unless told otherwise).
        momentum (float): BN's running-statistics rate. Default: 0.1.
        lam (float): Initial blend factor, in [0, 1]. Default: 1
            (LayerNorm; :class:`PRepBNScheduleHook` decays it).
        sync (bool): See :class:`RepBN`. Default: True.

    Submodules: ``ln`` (``nn.LayerNorm``), ``repbn`` (:class:`RepBN`).
    Buffer: ``lam`` (0-d).
    """
    _abbr_ = 'prepbn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.1, lam: float = 1.0, sync: bool = True):
        super().__init__()
        check_num_features('PRepBN', num_features)
        check_lam('PRepBN', lam)
        self.num_features = num_features
        self.ln = nn.LayerNorm(num_features, eps=eps)
        self.repbn = RepBN(num_features, eps=eps, momentum=momentum,
                           sync=sync)
        self.register_buffer('lam', torch.tensor(float(lam)))

    def set_lam(self, lam: float) -> None:
        check_lam('PRepBN', lam)
        self.lam.fill_(float(lam))

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens('PRepBN', x, self.num_features)
        if autocast_on(x):
            return float32_off_autocast(self.forward, x)
        lam = float(self.lam)
        if lam == 1:
            return self.ln(x)
        if lam == 0:
            return self.repbn(x)
        # lam * LN(x) + (1 - lam) * RepBN(x), in one op
        return torch.lerp(self.repbn(x), self.ln(x), lam)

    def reparameterize(self) -> nn.BatchNorm1d:
        """The eval form as one ``nn.BatchNorm1d`` on (M, C) rows; only at
        lam = 0."""
        if float(self.lam) != 0:
            raise ValueError(
                f'PRepBN.reparameterize: lam={float(self.lam):g}; the layer '
                'is one BatchNorm only at lam = 0 (the end of the '
                'PRepBNScheduleHook schedule)')
        return self.repbn.reparameterize()

    def extra_repr(self) -> str:
        return f'{self.num_features}, lam={float(self.lam):g}'


def check_lam(owner: str, lam) -> None:
    if not (isinstance(lam, (int, float)) and 0 <= lam <= 1):
        raise ValueError(f'{owner}: lam={lam!r} is not valid; it must be a '
                         'number in [0, 1]')
