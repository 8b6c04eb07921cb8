"""Moving Average Batch Normalization (Yan et al., ICLR 2020), for (N, C, *)
inputs, to be used after a :class:`CenteredConv2d` (weight centralization),
which stands in for the mean statistic that MABN drops.

Training step t (1-based, ``num_batches_tracked`` after the step), with
per-channel gamma, beta and m = ``buffer_size``::

    chi_B = mean_{N,*}(x ** 2)                   (second moment, no mean)
    chi   = chi_B                     while t <= T_w = max(m, warmup_iters)
          = mean of the last m chi_B  after       (SMA, "SMAS" in the paper)
    z = x / sqrt(chi + eps)
    r = clip(sqrt(chi + eps) / sqrt(running_var + eps), 1/r_max, r_max)
        (r = 1 while t <= renorm_iters; no gradient)
    y = gamma * r * z + beta
    running_var <- (1 - momentum) * running_var + momentum * chi

Backward, with g = dL/dy * gamma * r::

    psi_B = mean_{N,*}(g * z)
    psi   = psi_B while t <= T_w, else the mean of the last m psi_B
    dL/dx = (g - z * psi) / sqrt(chi + eps)

During the warm-up (t <= T_w) this is the exact gradient of the forward
(normalization by the batch second moment); afterwards both statistics of
the backward are moving averages too, so the gradient is the paper's
approximation, not the derivative of the forward. The psi buffer is written
in the backward pass: a training forward without a backward leaves it
unchanged.

Eval: ``y = gamma * x / sqrt(running_var + eps) + beta``, an affine map per
channel; :meth:`MABN.to_batchnorm` returns the equivalent
``nn.BatchNorm2d`` (running mean 0), which mmcv's ``fuse_conv_bn`` folds
into the preceding conv (after :meth:`CenteredConv2d.to_conv`); mmbcn's
``fold_norm`` does not handle MABN / CenteredConv2d, and refuses a model
that still has them.

Defaults follow the authors' released code: ``warmup_iters=100``, running
rate 0.02 (their momentum 0.98 is the decay), renormalization with
``r_max=5`` after ``renorm_iters=1000``; their ``buffer_size`` is the batch
to simulate over the batch per GPU (32 / 2 = 16, the default here). Paper
setting for detection: Mask R-CNN R-50-FPN, 2 images per GPU, CenteredConv2d
+ MABN in backbone, neck and heads.

What differs from the paper: only simple moving averages are implemented
(the paper also analyses exponential ones); the batch statistics and the
backward's psi are averaged over all ranks' samples when ``sync`` is set and
torch.distributed is initialized (one all-reduce each way per layer and
step), so every rank computes what one process on the concatenated batch
would. A rank must run the backward of every synchronized forward.

Training modes: ``norm_eval`` reaches the layer through its ``stats_mode``
switch (a ``_BatchNorm`` child, as BCN's): with it in eval, a training step
is the eval form and moves nothing. An activation-checkpointing
recomputation reuses its first forward's sqrt(chi + eps), r and slot and
updates nothing. Empty inputs: empty output, zero gradients, no update.
"""
import torch
import torch.distributed as dist
import torch.fx
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ...distributed.sync import get_world_size
from ._autocast import autocast_on, float32_off_autocast
from ._batch_stats import channel_view, reduce_dims
from ._checks import check_input, check_num_features
from ._modes import Replay, StatsMode, empty_output, fx_leaf_call


def _global_channel_mean(t: Tensor, sync: bool) -> Tensor:
    """Per-channel mean of the (N, C, *) ``t`` over (N, *) and, with
    ``sync``, over every rank's samples (no gradient)."""
    c = t.shape[1]
    packed = torch.cat([t.sum(reduce_dims(t)),
                        t.new_full((1, ), float(t.numel() // max(c, 1)))])
    if sync and get_world_size() > 1:
        dist.all_reduce(packed)
    return packed[:c] / packed[-1].clamp(min=1)


class _MABNFunction(torch.autograd.Function):
    """z = x / std, y = gamma * r * z + beta with the step's constants std
    and r; the backward of the module docstring (psi written to
    ``buffer_gz[slot]``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, std, r, buffer_gz, slot, moving,
                sync):
        z = x / channel_view(std, x)
        ctx.save_for_backward(z, std, r, weight)
        # written in backward: kept out of autograd's version checks
        ctx.buffer_gz = buffer_gz
        ctx.moving, ctx.slot, ctx.sync = moving, slot, sync
        return z * channel_view(weight * r, x) + channel_view(bias, x)

    @staticmethod
    def backward(ctx, dy):
        z, std, r, weight = ctx.saved_tensors
        buffer_gz = ctx.buffer_gz
        g = dy * channel_view(weight * r, dy)
        psi_b = _global_channel_mean(g * z, ctx.sync)
        buffer_gz[ctx.slot].copy_(psi_b)
        psi = buffer_gz.mean(0) if ctx.moving else psi_b
        dx = (g - z * channel_view(psi, z)) / channel_view(std, z)
        dims = reduce_dims(dy)
        d_weight = (dy * z).sum(dims) * r
        d_bias = dy.sum(dims)
        return (dx, d_weight, d_bias) + (None, ) * 6


@MODELS.register_module('MABN')
class MABN(nn.Module):
    """Moving Average Batch Normalization; see the module docstring.

    Args:
        num_features (int): Channels C of the (N, C, *) input.
        eps (float): Default: 1e-5.
        momentum (float): Rate of the running-variance update, in (0, 1].
            Default: 0.02.
        buffer_size (int): m, the iterations the moving averages span
            (>= 1). Default: 16.
        warmup_iters (int): Steps with the current batch's statistics
            (at least ``buffer_size`` are used). Default: 100.
        renorm_iters (int): Steps with r = 1 before renormalization toward
            the running variance starts. Default: 1000.
        r_max (float): Clip of r (>= 1). Default: 5.
        sync (bool): Statistics over all ranks' samples when
            torch.distributed is initialized. Default: True.

    Parameters: ``weight``, ``bias`` (C,). Buffers: ``running_var`` (C,),
    ``num_batches_tracked``, ``buffer_x2`` and ``buffer_gz`` (m, C).
    """
    _abbr_ = 'mabn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.02, buffer_size: int = 16,
                 warmup_iters: int = 100, renorm_iters: int = 1000,
                 r_max: float = 5.0, sync: bool = True):
        super().__init__()
        check_num_features('MABN', num_features)
        if not eps > 0:
            raise ValueError(f'MABN: eps={eps!r} is not valid; it must be '
                             '> 0')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f'MABN: momentum={momentum!r} is not valid; it '
                             'must be a number in (0, 1]')
        if not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError(f'MABN: buffer_size={buffer_size!r} is not '
                             'valid; it must be an int >= 1')
        for name, value in (('warmup_iters', warmup_iters),
                            ('renorm_iters', renorm_iters)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f'MABN: {name}={value!r} is not valid; it '
                                 'must be an int >= 0')
        if not r_max >= 1:
            raise ValueError(f'MABN: r_max={r_max!r} is not valid; it must '
                             'be >= 1')
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.buffer_size = buffer_size
        self.warmup_iters = warmup_iters
        self.renorm_iters = renorm_iters
        self.r_max = r_max
        self.sync = sync
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked',
                             torch.tensor(0, dtype=torch.long))
        self.register_buffer('buffer_x2',
                             torch.zeros(buffer_size, num_features))
        self.register_buffer('buffer_gz',
                             torch.zeros(buffer_size, num_features))
        self._replay = Replay()
        self.stats_mode = StatsMode()

    def reset_running_stats(self) -> None:
        """Back to the initial state: running variance 1, step 0, empty
        moving-average buffers."""
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()
        self.buffer_x2.zero_()
        self.buffer_gz.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        check_input('MABN', x, self.num_features)
        if autocast_on(x):
            return float32_off_autocast(self.forward, x)
        # eval, or frozen statistics (norm_eval reaches stats_mode)
        if not (self.training and self.stats_mode.training):
            if x.numel() == 0:
                return empty_output(x, self)
            scale = self.weight * torch.rsqrt(self.running_var + self.eps)
            return x * channel_view(scale, x) + channel_view(self.bias, x)
        if x.numel() == 0 and not (self.sync and get_world_size() > 1):
            return empty_output(x, self)  # zero gradients, no update
        if torch.jit.is_tracing():
            raise RuntimeError(
                'MABN: torch.jit.trace of a training step is not supported '
                '(the step counter, the moving-average slot and the backward '
                "pass's buffer live outside the graph); trace in eval mode")
        # a recomputation by activation checkpointing gets the constants
        # of its first forward and updates nothing
        step_constants = self._replay.take()
        if step_constants is None:
            step_constants = self._step_statistics(x)
            self._replay.remember(step_constants)
        std, r, slot, moving = step_constants
        return _MABNFunction.apply(x, self.weight, self.bias, std, r,
                                   self.buffer_gz, slot, moving, self.sync)

    @torch.no_grad()
    def _step_statistics(self, x: Tensor):
        """The statistics update of a training step; returns its constants
        (sqrt(chi + eps), r, the buffer slot, whether chi is moving)."""
        self.num_batches_tracked.add_(1)
        step = int(self.num_batches_tracked)
        moving = step > max(self.buffer_size, self.warmup_iters)
        chi_b = _global_channel_mean(x.square(), self.sync)
        slot = step % self.buffer_size
        self.buffer_x2[slot].copy_(chi_b)
        chi = self.buffer_x2.mean(0) if moving else chi_b
        std = torch.sqrt(chi + self.eps)
        if step > self.renorm_iters:
            r = (std / torch.sqrt(self.running_var + self.eps)).clamp(
                1 / self.r_max, self.r_max)
        else:
            r = torch.ones_like(std)
        self.running_var.lerp_(chi, self.momentum)
        return std, r, slot, moving

    @torch.no_grad()
    def to_batchnorm(self) -> nn.BatchNorm2d:
        """The eval form as an ``nn.BatchNorm2d`` (running mean 0): same
        output on (N, C, H, W) inputs in eval mode."""
        bn = nn.BatchNorm2d(self.num_features, eps=self.eps,
                            device=self.weight.device,
                            dtype=self.weight.dtype)
        bn.running_var.copy_(self.running_var)
        bn.weight.copy_(self.weight)
        bn.bias.copy_(self.bias)
        return bn.eval()

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'momentum={self.momentum}, buffer_size={self.buffer_size}, '
                f'warmup_iters={self.warmup_iters}, '
                f'renorm_iters={self.renorm_iters}, r_max={self.r_max}, '
                f'sync={self.sync}')
