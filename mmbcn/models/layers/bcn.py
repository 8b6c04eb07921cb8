"""Batch-Channel Normalization (BCN).

Two stages on an (N, C, *) input. The batch stage normalizes each channel
with batch statistics and a per-channel affine (gamma_b, beta_b); the channel
stage is a group normalization over ``num_groups`` groups per sample, with an
affine per group (default, as the authors' code) or per channel::

    x1 = gamma_b * (x - mu_c) / sqrt(var_c + eps) + beta_b
    y  = w * (x1 - mean_g(x1)) / sqrt(var_g(x1) + eps) + b

``mode='micro'`` (micro-batch, default): mu_c / var_c are estimates updated
every training step without gradient, from the batch moments::

    m = mean(x),  v = mean((x - mu_hat_old) ** 2)      over (N, *)
    mu_hat  <- (1 - r) * mu_hat  + r * m
    var_hat <- (1 - r) * var_hat + r * v

and the step normalizes with the updated estimates. ``r`` is the buffer
``update_rate`` (default 0.01, settable or schedulable from outside). With
``average_warmup=True`` (default) a step uses ``max(r, 1 / (t + 1))``, t being
the number of updates so far: the estimate starts as the plain average of the
batches seen, so the (0, 1) initial estimate leaves no lasting bias, and turns
into the exponential average once ``1 / (t + 1) < r``.

``mode='large'`` (large-batch): mu_c / var_c are the current batch statistics
with gradient, as in BatchNorm; the estimates are updated as BatchNorm's
running statistics with momentum ``r``.

Across ranks (``torch.distributed``, gloo or NCCL), ``sync`` says how the
batch statistics are shared (see :mod:`mmbcn.distributed.sync`):
``'layer'`` (default) reduces each layer's statistics when it runs, so every
rank computes exactly what one process on the concatenated batch would;
``'deferred'`` normalizes with the estimates as they stood and updates all
layers after the iteration with one coalesced all-reduce
(:class:`~mmbcn.engine.hooks.BCNDeferredSyncHook`), a one-step lag;
``'none'`` keeps each rank's statistics to itself (large-batch mode then
normalizes with the local batch, as BatchNorm under DDP).

In eval mode both modes normalize with the estimates and never update them.
Under autocast BCN runs in float32, as GroupNorm does.

On CPU (float32 / float64, mmbcn's C++ kernels built) a micro-batch step,
estimate update included, is one fused C++ call per direction
(:func:`~mmbcn.models.functional.bcn.fused_micro_bcn`); where the batch
moments must first be reduced across ranks (``sync='layer'`` with more than
one rank) the step is the moments, the update and
:func:`~mmbcn.models.functional.bcn.fixed_stats_bcn`. On CUDA (float32,
Triton installed) the step runs on Triton kernels, a few launches per
direction (:func:`~mmbcn.models.functional.bcn_triton.triton_micro_bcn`);
elsewhere on torch ops (:func:`~mmbcn.models.functional.bcn.fixed_stats_bcn`).

The training modes of mmdet / mmseg (empty batches, activation
checkpointing, ``norm_eval`` through the ``stats_mode`` switch, tracing,
double backward) are described in ``docs/modes.md``.
"""
from typing import Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ...compat.recompute import in_backward, may_be_recomputed
from ...distributed.sync import (DeferredStats, get_world_size,
                                 reduce_batch_moments, sync_batch_norm)
from ..functional.bcn import (can_fuse, channel_moments,
                              differentiable_bcn, fixed_stats_bcn,
                              fused_micro_bcn, per_channel)
from ..functional.bcn_triton import can_use_triton, triton_micro_bcn
from ._checks import check_input, check_num_features, check_num_groups
from ._modes import (StatsMode, empty_output, empty_output_of, fx_leaf_call,
                     restore_layout)

BCN_MODES = ('micro', 'large')
BCN_AFFINES = ('group', 'channel')
BCN_SYNCS = ('layer', 'deferred', 'none')
# pending deferred updates beyond which the flushing hook must be missing
_MAX_PENDING = 256
# training steps whose estimates are kept for a checkpointing recomputation
_REPLAY_DEPTH = 16


@MODELS.register_module('BCN')
class BCN(nn.Module):
    """Batch-Channel Normalization; see the module docstring for the math.

    Args:
        num_features (int): Channels C of the (N, C, *) input.
        num_groups (int): Groups G of the channel stage; must divide C.
            Default: 32.
        eps (float): Added to every variance. Default: 1e-5.
        mode (str): ``'micro'`` (estimated statistics) or ``'large'``
            (batch statistics). Default: ``'micro'``.
        update_rate (float): Rate r of the estimate update, in (0, 1].
            Default: 0.01.
        average_warmup (bool): Use ``max(r, 1 / (t + 1))`` as the rate.
            Default: True.
        affine (str): ``'group'`` (weight/bias of shape (G,)) or
            ``'channel'`` (shape (C,)) for the channel-stage affine.
            Default: ``'group'``.
        sync (str): ``'layer'``, ``'deferred'`` or ``'none'``: how batch
            statistics are shared across ranks. Default: ``'layer'``.

    Parameters: ``batch_weight``, ``batch_bias`` (C,) for the batch stage;
    ``weight``, ``bias`` for the channel stage. Buffers: ``running_mean``,
    ``running_var`` (the estimates), ``num_batches_tracked``, ``update_rate``.
    """
    _abbr_ = 'bcn'

    def __init__(self, num_features: int, num_groups: int = 32,
                 eps: float = 1e-5, mode: str = 'micro',
                 update_rate: float = 0.01, average_warmup: bool = True,
                 affine: str = 'group', sync: str = 'layer'):
        super().__init__()
        check_num_features('BCN', num_features)
        check_num_groups('BCN', num_features, num_groups)
        if mode not in BCN_MODES:
            raise ValueError(f'BCN: mode={mode!r} is not valid; choose one '
                             f'of {BCN_MODES}')
        if affine not in BCN_AFFINES:
            raise ValueError(f'BCN: affine={affine!r} is not valid; choose '
                             f'one of {BCN_AFFINES}')
        if sync not in BCN_SYNCS:
            raise ValueError(f'BCN: sync={sync!r} is not valid; choose one '
                             f'of {BCN_SYNCS}')
        if sync == 'deferred' and mode != 'micro':
            raise ValueError("BCN: sync='deferred' is for mode='micro'; "
                             "large-batch mode needs the statistics of the "
                             "current step: use sync='layer' or 'none'")
        if not 0 < update_rate <= 1:
            raise ValueError(f'BCN: update_rate={update_rate!r} is not '
                             'valid; it must be in (0, 1]')
        if not eps > 0:
            raise ValueError(f'BCN: eps={eps!r} is not valid; it must be > 0')
        self.num_features = num_features
        self.num_groups = num_groups
        self.eps = eps
        self.mode = mode
        self.average_warmup = average_warmup
        self.affine = affine
        self.sync = sync
        self.deferred = DeferredStats()
        self.stats_mode = StatsMode()
        self._replay = []
        affine_size = num_groups if affine == 'group' else num_features
        self.batch_weight = nn.Parameter(torch.empty(num_features))
        self.batch_bias = nn.Parameter(torch.empty(num_features))
        self.weight = nn.Parameter(torch.empty(affine_size))
        self.bias = nn.Parameter(torch.empty(affine_size))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked',
                             torch.tensor(0, dtype=torch.long))
        self.register_buffer('update_rate', torch.tensor(float(update_rate)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.batch_weight)
        nn.init.zeros_(self.batch_bias)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()

    def current_rate(self) -> Tensor:
        """The rate the next training step uses for its estimate update."""
        rate = self.update_rate
        if self.average_warmup:
            steps = self.num_batches_tracked.to(rate.dtype) + 1
            rate = torch.maximum(rate, steps.reciprocal())
        return rate

    def batch_moments(self, mean_nc: Tensor,
                      var_nc: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-channel (m, v) of the update from per-sample moments.

        ``v`` is the second moment around the current (old) estimate.
        """
        m = mean_nc.mean(0)
        v = (var_nc + (mean_nc - self.running_mean).pow(2)).mean(0)
        return m, v

    def update_estimates(self, m: Tensor, v: Tensor) -> None:
        with torch.no_grad():
            rate = self.current_rate()
            self.running_mean.lerp_(m.to(self.running_mean.dtype), rate)
            self.running_var.lerp_(v.to(self.running_var.dtype), rate)
            self.num_batches_tracked.add_(1)

    def _check_pending(self) -> None:
        if len(self.deferred) >= _MAX_PENDING:
            raise RuntimeError(
                f"BCN(sync='deferred'): {len(self.deferred)} steps of "
                'statistics are waiting for their update; add '
                "dict(type='BCNDeferredSyncHook') to custom_hooks")

    def _micro_update(self, mean_nc: Tensor, var_nc: Tensor) -> None:
        m, v = self.batch_moments(mean_nc, var_nc)
        count = mean_nc.shape[0]
        if self.sync == 'deferred':
            self._check_pending()
            self.deferred.push(m, v, count)
            return
        if self.sync == 'layer':
            m, v = reduce_batch_moments(m, v, count)
        self.update_estimates(m, v)

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return self._scripted_forward(x)
        return self._eager_forward(x)

    def _scripted_forward(self, x: Tensor) -> Tensor:
        """:meth:`forward` as ``torch.jit.script`` compiles it: torch ops
        only, the same math and estimate updates as the eager paths (the
        batch moments of this process's samples: no cross-rank reduction;
        no autocast switch; no activation-checkpointing bookkeeping)."""
        check_input('BCN', x, self.num_features)
        if x.numel() == 0:
            return empty_output_of(x, [self.batch_weight, self.batch_bias,
                                       self.weight, self.bias])
        x3 = x.reshape(x.shape[0], self.num_features, -1)
        estimating = self.training and self.stats_mode.training
        if estimating and self.mode == 'large':
            rate = self.current_rate()
            x1 = F.batch_norm(x3, None, None, self.batch_weight,
                              self.batch_bias, True, 0., self.eps)
            # detached statistics into buffers: nothing for autograd
            var_b, mean_b = torch.var_mean(x3.detach(), dim=[0, 2],
                                           correction=1)
            self.running_mean.lerp_(mean_b, rate)
            self.running_var.lerp_(var_b, rate)
            self.num_batches_tracked.add_(1)
            y3 = F.group_norm(x1, self.num_groups,
                              per_channel(self.weight, self.num_features),
                              per_channel(self.bias, self.num_features),
                              self.eps)
        else:
            if estimating:
                if self.sync == 'deferred':
                    raise RuntimeError(
                        "BCN: a scripted training step with sync='deferred' "
                        'is not supported (the queued statistics live '
                        "outside the script); use sync='layer' or 'none', "
                        'or eval mode')
                var_nc, mean_nc = torch.var_mean(x3.detach(), dim=2,
                                                 correction=0)
                m, v = self.batch_moments(mean_nc, var_nc)
                self.update_estimates(m, v)
            inv = torch.rsqrt(self.running_var + self.eps)
            y3 = differentiable_bcn(x3, inv, self.running_mean * inv,
                                    self.batch_weight, self.batch_bias,
                                    self.weight, self.bias, self.num_groups,
                                    self.eps)
        return restore_layout(y3, x)

    @torch.jit.unused
    def _eager_forward(self, x: Tensor) -> Tensor:
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        check_input('BCN', x, self.num_features)
        if torch.is_autocast_enabled(x.device.type):
            # like GroupNorm under autocast: computed and returned in float32
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float())
        if x.numel() == 0:
            return empty_output(x, self)
        x3 = x.reshape(x.shape[0], self.num_features, -1)
        estimating = self.training and self.stats_mode.training
        # a recomputation by activation checkpointing: same output as the
        # first forward, estimates left alone
        recompute = estimating and in_backward()
        if estimating and self.mode == 'large':
            y3 = self._large_forward(x3, update=not recompute)
        elif torch.jit.is_tracing():
            y3 = self._traceable_forward(x3, estimating)
        elif recompute and self.sync != 'deferred':
            mean, var = (self._replay.pop() if self._replay else
                         (self.running_mean, self.running_var))
            y3 = self._normalize(x3, mean, var)
        elif estimating and not recompute:
            y3 = self._micro_step(x3)
        else:  # eval, frozen statistics (norm_eval), deferred recomputation
            y3 = self._normalize(x3, self.running_mean, self.running_var)
        return restore_layout(y3, x)

    def _large_forward(self, x3: Tensor, update: bool) -> Tensor:
        """Large-batch mode in training: BatchNorm with batch statistics
        (estimates updated as running statistics unless ``update`` is
        False), then the channel stage."""
        rate_t = self.current_rate()
        rate = float(rate_t)
        mean, var = self.running_mean, self.running_var
        if update:
            self.num_batches_tracked.add_(1)
        else:  # same ops as the first forward, on copies of the estimates
            mean, var = mean.clone(), var.clone()
        if self.sync != 'none' and get_world_size() > 1:
            x1 = sync_batch_norm(x3, mean, var, self.batch_weight,
                                 self.batch_bias, rate, self.eps)
        elif torch.jit.is_tracing():
            # the rate as a tensor op, so that a trace keeps the warm-up
            x1 = F.batch_norm(x3, None, None, self.batch_weight,
                              self.batch_bias, training=True, eps=self.eps)
            with torch.no_grad():
                var_b, mean_b = torch.var_mean(x3, dim=(0, 2), correction=1)
                if update:
                    self.running_mean.lerp_(mean_b, rate_t)
                    self.running_var.lerp_(var_b, rate_t)
        else:
            x1 = F.batch_norm(x3, mean, var, self.batch_weight,
                              self.batch_bias, training=True, momentum=rate,
                              eps=self.eps)
        w, b = self.weight, self.bias
        if self.affine == 'group':
            k = self.num_features // self.num_groups
            w, b = w.repeat_interleave(k), b.repeat_interleave(k)
        return F.group_norm(x1, self.num_groups, w, b, self.eps)

    def _traceable_forward(self, x3: Tensor, estimating: bool) -> Tensor:
        """The micro-batch step (or eval) in torch ops only, for
        ``torch.jit.trace``: a saved trace cannot hold the custom autograd
        Functions of the fast paths."""
        if estimating:
            if self.sync == 'deferred':
                raise RuntimeError(
                    "BCN: torch.jit.trace of a training step with "
                    "sync='deferred' is not supported (the queued "
                    'statistics live outside the graph); trace in eval mode '
                    "or with sync='layer' or 'none'")
            with torch.no_grad():
                mean_nc, var_nc = channel_moments(x3, impl='torch')
            self._micro_update(mean_nc, var_nc)
        inv = torch.rsqrt(self.running_var + self.eps)
        return differentiable_bcn(x3, inv, self.running_mean * inv,
                                  self.batch_weight, self.batch_bias,
                                  self.weight, self.bias, self.num_groups,
                                  self.eps)

    def _normalize(self, x3: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """BCN with the batch stage at fixed statistics (mean, var); no
        estimate changes."""
        params = (self.batch_weight, self.batch_bias, self.weight, self.bias)
        if can_fuse(x3, mean, var, *params):
            return fused_micro_bcn(x3, mean, var, *params, self.num_groups,
                                   self.eps)[0]
        if can_use_triton(x3, self.num_groups, mean, var, *params):
            return triton_micro_bcn(x3, mean, var, *params, self.num_groups,
                                    self.eps)[0]
        with torch.no_grad():
            mean_nc, var_nc = channel_moments(x3)
        return fixed_stats_bcn(x3, mean_nc, var_nc, mean, var, *params,
                               self.num_groups, self.eps)

    def _remember(self, mean: Tensor, var: Tensor,
                  copy: bool = False) -> None:
        """Keep the estimates a training step normalized with (a copy of
        them if ``copy``), for its recomputation by activation
        checkpointing (last in, first out)."""
        if self.sync == 'deferred' or not may_be_recomputed():
            return
        if copy:
            mean, var = mean.clone(), var.clone()
        self._replay.append((mean, var))
        if len(self._replay) > _REPLAY_DEPTH:
            del self._replay[0]

    def _micro_step(self, x3: Tensor) -> Tensor:
        """A micro-batch training step: estimates updated by this batch
        (or its moments queued, ``sync='deferred'``), then normalized."""
        if self._fusable(x3):
            return self._fused_forward(x3)
        if can_use_triton(x3, self.num_groups, self.running_mean,
                          self.running_var, self.batch_weight,
                          self.batch_bias, self.weight, self.bias):
            y3 = self._triton_forward(x3)
        else:
            with torch.no_grad():
                mean_nc, var_nc = channel_moments(x3)
            self._micro_update(mean_nc, var_nc)
            y3 = fixed_stats_bcn(x3, mean_nc, var_nc, self.running_mean,
                                 self.running_var, self.batch_weight,
                                 self.batch_bias, self.weight, self.bias,
                                 self.num_groups, self.eps)
        self._remember(self.running_mean, self.running_var, copy=True)
        return y3

    def _fusable(self, x3: Tensor) -> bool:
        """Whether the micro-batch step can run as one fused C++ call: CPU
        kernels built and applicable, and no cross-rank reduction of the
        batch moments between the moments and the normalization."""
        if not can_fuse(x3, self.running_mean, self.running_var,
                        self.batch_weight, self.batch_bias, self.weight,
                        self.bias):
            return False
        return not (self.sync == 'layer' and get_world_size() > 1)

    def _fused_forward(self, x3: Tensor) -> Tensor:
        """The micro-batch step of :meth:`forward` on
        :func:`fused_micro_bcn`: same estimate update and output."""
        update = self.sync != 'deferred'
        if not update:
            self._check_pending()
        rate = float(self.current_rate()) if update else 0.
        y, new_mean, new_var, m, v = fused_micro_bcn(
            x3, self.running_mean, self.running_var, self.batch_weight,
            self.batch_bias, self.weight, self.bias, self.num_groups,
            self.eps, update, rate)
        with torch.no_grad():
            if update:
                self.running_mean.copy_(new_mean)
                self.running_var.copy_(new_var)
                self.num_batches_tracked.add_(1)
            else:
                self.deferred.push(m, v, x3.shape[0])
        if update:
            self._remember(new_mean, new_var)
        return y

    def _triton_forward(self, x3: Tensor) -> Tensor:
        """The micro-batch step (or eval) of :meth:`forward` on
        :func:`triton_micro_bcn`: same estimate update and output; the
        update runs inside the kernel unless the moments must first be
        reduced across ranks."""
        args = (x3, self.running_mean, self.running_var, self.batch_weight,
                self.batch_bias, self.weight, self.bias, self.num_groups,
                self.eps)
        if not self.training:
            return triton_micro_bcn(*args)[0]
        if self.sync == 'layer' and get_world_size() > 1:
            with torch.no_grad():
                mean_nc, var_nc = channel_moments(x3)
            self._micro_update(mean_nc, var_nc)
            return triton_micro_bcn(*args, mean_nc=mean_nc,
                                    var_nc=var_nc)[0]
        if self.sync == 'deferred':
            self._check_pending()
            y, m, v = triton_micro_bcn(*args, moments=True)
            self.deferred.push(m, v, x3.shape[0])
            return y
        y, _, _ = triton_micro_bcn(
            *args, moments=True, update=True, rate=self.update_rate,
            steps=self.num_batches_tracked,
            average_warmup=self.average_warmup)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
        return y

    def extra_repr(self) -> str:
        return (f'{self.num_features}, num_groups={self.num_groups}, '
                f'eps={self.eps}, mode={self.mode!r}, '
                f'update_rate={float(self.update_rate):g}, '
                f'average_warmup={self.average_warmup}, '
                f'affine={self.affine!r}, sync={self.sync!r}')
