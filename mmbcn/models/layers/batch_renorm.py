"""Batch Renormalization (Ioffe 2017), for (N, C, *) inputs.

Training normalizes with the batch moments (with gradient) and corrects the
result toward the running statistics with r and d, which are treated as
constants in the backward pass::

    mu_B, var_B = batch mean, biased batch variance over (N, *)
    sigma_B = sqrt(var_B + eps),   sigma = sqrt(running_var + eps)
    r = clip(sigma_B / sigma, 1 / r_max, r_max)              (no gradient)
    d = clip((mu_B - running_mean) / sigma, -d_max, d_max)   (no gradient)
    y = gamma * ((x - mu_B) / sigma_B * r + d) + beta

then the running statistics move as BatchNorm's do:
``running_mean += momentum * (mu_B - running_mean)``, ``running_var +=
momentum * (unbiased var_B - running_var)``. With r_max = 1, d_max = 0 the
step is BatchNorm's. Eval is BatchNorm's eval,
``y = gamma * (x - running_mean) / sigma + beta``: an affine map per channel.

Differences from the paper: it moves the running standard deviation sigma;
here the running *variance* moves (as in torch's BatchNorm, whose class this
layer extends), so that the buffers, ``norm_eval``, weight-decay rules for
norms and mmcv's ``fuse_conv_bn`` treat it as a BatchNorm. The sigma of r
and d is then ``sqrt(running_var + eps)``.

r_max and d_max are buffers (saved in checkpoints), set from outside by
:class:`~mmbcn.engine.hooks.BatchRenormScheduleHook`. Paper setting
(ImageNet Inception, 50 x 32 images): r_max = 1, d_max = 0 (BatchNorm) for
the first 5k steps, then relaxed linearly to r_max = 3 at 40k steps and
d_max = 5 at 25k steps.

Across ranks (``sync=True`` and torch.distributed initialized with more than
one rank) the batch moments are those of all ranks' samples, through one
differentiable all-reduce: each rank computes what one process on the
concatenated batch would (outputs, input gradients, running statistics);
parameter gradients are each rank's share, summed/averaged by DDP. On one
process (or ``sync=False``) the step is torch's fused BatchNorm with weight
gamma * r and bias beta + gamma * d (r, d constants), after one extra pass
for the batch moments.

Deployment: the eval form is BatchNorm's, so mmcv's ``fuse_conv_bn`` folds
it into the preceding convolution (it recognizes any ``_BatchNorm``);
mmbcn's ``fold_norm`` does not, and refuses a model that still has an
mmbcn layer: run ``fuse_conv_bn`` first. torch's and mmengine's
``convert_sync_batchnorm`` (the Runner's ``sync_bn``) would replace it by a
plain SyncBatchNorm: they raise an error instead (the layer synchronizes
itself, ``sync=True``). ``revert_sync_batchnorm`` leaves it alone.

Training modes: an empty input gives an empty output with zero gradients and
no update; one value per channel is refused as BatchNorm refuses it; an
activation-checkpointing recomputation reuses its first forward's (r, d) and
updates nothing (``docs/modes.md``).
"""
import torch
import torch.fx
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ...distributed.sync import get_world_size
from ._autocast import autocast_on, float32_off_autocast
from ._batch_stats import batch_moments, channel_view, reduce_dims
from ._checks import check_input, check_num_features
from ._modes import (RefusesSyncBatchNormConversion, Replay,
                     check_values_per_channel, empty_output, fx_leaf_call)


def renorm_correction(mean_b: Tensor, var_b: Tensor, running_mean: Tensor,
                      running_var: Tensor, eps: float, r_max, d_max):
    """(r, d) of Batch Renormalization, without gradient."""
    with torch.no_grad():
        sigma = torch.sqrt(running_var + eps)
        r = (torch.sqrt(var_b + eps) / sigma).clamp(1 / r_max, r_max)
        d = ((mean_b - running_mean) / sigma).clamp(-d_max, d_max)
    return r, d


@MODELS.register_module('BatchRenorm')
class BatchRenorm(RefusesSyncBatchNormConversion, _BatchNorm):
    """Batch Renormalization; see the module docstring for the math.

    Args:
        num_features (int): Channels C of the (N, C, *) input.
        eps (float): Added to the variances. Default: 1e-5.
        momentum (float): Rate of the running-statistics update, in (0, 1].
            Default: 0.01 (mmbcn's choice, the rate of about the last 100
            steps; not a value taken from the paper).
        r_max (float): Initial clip of r (>= 1). Default: 3 (the paper's
            final value; schedule it with ``BatchRenormScheduleHook``).
        d_max (float): Initial clip of d (>= 0). Default: 5 (likewise).
        sync (bool): Batch moments over all ranks' samples when
            torch.distributed is initialized. Default: True.

    Parameters: ``weight``, ``bias`` (C,). Buffers: ``running_mean``,
    ``running_var``, ``num_batches_tracked`` (as BatchNorm), ``r_max``,
    ``d_max`` (0-d).
    """
    _abbr_ = 'brn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.01, r_max: float = 3.0,
                 d_max: float = 5.0, sync: bool = True):
        check_num_features('BatchRenorm', num_features)
        if not eps > 0:
            raise ValueError(f'BatchRenorm: eps={eps!r} is not valid; it '
                             'must be > 0')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f'BatchRenorm: momentum={momentum!r} is not '
                             'valid; it must be a number in (0, 1]')
        check_clips('BatchRenorm', r_max, d_max)
        super().__init__(num_features, eps, momentum, affine=True,
                         track_running_stats=True)
        self.sync = sync
        self.register_buffer('r_max', torch.tensor(float(r_max)))
        self.register_buffer('d_max', torch.tensor(float(d_max)))
        self._replay = Replay()

    def _check_input_dim(self, x: Tensor) -> None:
        check_input('BatchRenorm', x, self.num_features)

    def set_clips(self, r_max: float, d_max: float) -> None:
        """Set r_max and d_max (what the schedule hook calls)."""
        check_clips('BatchRenorm', r_max, d_max)
        self.r_max.fill_(float(r_max))
        self.d_max.fill_(float(d_max))

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        self._check_input_dim(x)
        if autocast_on(x):
            return float32_off_autocast(self.forward, x)
        synced = self.training and self.sync and get_world_size() > 1
        if x.numel() == 0 and not synced:
            return empty_output(x, self)  # zero gradients, no update
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var,
                                self.weight, self.bias, False, 0., self.eps)
        # a recomputation by activation checkpointing gets the (r, d) of
        # its first forward and updates nothing
        replay = self._replay.take()
        if not synced:
            return self._local_forward(x, replay)
        mean_b, var_b, total = batch_moments(x, self.running_mean, self.sync)
        if int(total) == 0:
            return empty_output(x, self)  # empty on every rank
        check_values_per_channel(int(total), x)
        r, d = replay if replay is not None else renorm_correction(
            mean_b, var_b, self.running_mean, self.running_var, self.eps,
            self.r_max, self.d_max)
        scale = self.weight * r * torch.rsqrt(var_b + self.eps)
        shift = self.bias + self.weight * d - mean_b * scale
        y = x * channel_view(scale, x) + channel_view(shift, x)
        if replay is None:
            with torch.no_grad():
                unbiased = var_b * total / (total - 1).clamp(min=1)
                self.running_mean.lerp_(mean_b.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
                self.num_batches_tracked.add_(1)
            self._replay.remember((r, d))
        return y

    def _local_forward(self, x: Tensor, replay=None) -> Tensor:
        """The training step on this process's batch alone: with r and d
        constants it is BatchNorm's training step with weight gamma * r and
        bias beta + gamma * d (one fused kernel per direction, and the same
        running-statistics update; none when ``replay`` gives the (r, d)
        of the step being recomputed)."""
        check_values_per_channel(x.numel() // self.num_features, x)
        if replay is None:
            with torch.no_grad():
                var_b, mean_b = torch.var_mean(x, reduce_dims(x),
                                               correction=0)
            r, d = renorm_correction(mean_b, var_b, self.running_mean,
                                     self.running_var, self.eps, self.r_max,
                                     self.d_max)
        else:
            r, d = replay
        weight = self.weight * r
        bias = torch.addcmul(self.bias, self.weight, d)
        mean, var = self.running_mean, self.running_var
        if replay is None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
            self._replay.remember((r, d))
        else:  # the same ops as the first forward, on copies
            mean, var = mean.clone(), var.clone()
        return F.batch_norm(x, mean, var, weight, bias, True, self.momentum,
                            self.eps)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'momentum={self.momentum}, r_max={float(self.r_max):g}, '
                f'd_max={float(self.d_max):g}, sync={self.sync}')


def check_clips(owner: str, r_max, d_max) -> None:
    if not r_max >= 1:
        raise ValueError(f'{owner}: r_max={r_max!r} is not valid; it must '
                         'be >= 1')
    if not d_max >= 0:
        raise ValueError(f'{owner}: d_max={d_max!r} is not valid; it must '
                         'be >= 0')
