"""Cross-Iteration Batch Normalization (Yao et al., CVPR 2021), for the
(N, C, *) output x of a convolution with weight W.

Training step t pools the per-channel moments of the current batch with
those of the last ``buffer_num`` steps; each past moment is carried to the
current weight by a first-order Taylor term::

    mu_t,   nu_t   = mean(x), mean(x ** 2) over (N, *)        (with gradient)
    g_s = d mu_s / d W_s,  h_s = d nu_s / d W_s   (per output channel c,
                                                   stored at step s)
    mu_s(W_t) = mu_s + <g_s[c], W_t[c] - W_s[c]>
    nu_s(W_t) = nu_s + <h_s[c], W_t[c] - W_s[c]>
    mean = (mu_t + sum_s mu_s(W_t)) / n
    nu   = (nu_t + sum_s max(nu_s(W_t), mu_s(W_t) ** 2)) / n
    var  = max(nu - mean ** 2, 0),   n = 1 + number of past steps used
    y = gamma * (x - mean) / sqrt(var + eps) + beta

The past moments are constants of the backward pass (the gradient flows
through mu_t, nu_t only, each with weight 1 / n). For a convolution mu is
linear in W, so mu_s(W_t) is exact; nu is quadratic, so nu_s(W_t) has an
error of order |W_t - W_s| ** 2. The conv's bias, if any, is not
compensated (before a norm, ``ConvModule(bias='auto')`` has none).
During the first ``burnin_iters`` steps the layer is BatchNorm (n = 1) and
keeps no history; the window then fills over ``buffer_num`` steps. The
running statistics move toward (mean, var * m / (m - 1)), m being the number
of pooled values per channel, with ``momentum``; eval uses them, as
BatchNorm does: the eval form is affine, and mmcv's ``fuse_conv_bn`` folds
it (the layer is a ``_BatchNorm``; mmbcn's ``fold_norm`` does not, and
refuses a model that still has it: run ``fuse_conv_bn`` first).

How the layer knows W: :func:`link_cbn_convs` (or the
:class:`~mmbcn.engine.hooks.CBNLinkHook`) puts a forward hook on every
convolution of the model that remembers which conv produced which live
output tensor; a CBN whose input *is* such an output (the same tensor
object: the conv -> norm pairs of ``ConvModule`` and mmdet / mmseg ResNets)
compensates with that conv's weight (its ``weight`` parameter, through any
re-parametrization such as Weight Standardization). g_s and h_s come from
two extra weight-gradient passes of that conv per step
(``torch.autograd.grad``). With ``compensate=True`` (default) a pooling step
whose input comes from no linked conv is an error; ``compensate=False``
pools the raw past moments (the paper's "naive" baseline) and needs no
conv. A frozen conv (weight without gradient) needs no compensation.

Memory: the history holds 2 * buffer_num tensors of the conv weight's size
per layer, in buffers saved with the checkpoint (a resumed run continues
exactly); they are allocated at the first pooling step, and loading a
checkpoint sizes them.

Without any link (a model built by mmdet's / mmseg's tools, no
``CBNLinkHook``) a ``compensate=True`` layer normalizes as in its burn-in
(current batch only: BatchNorm, no history) and logs a warning once per
process; in a linked model an input from no linked conv stays an error.
torch's and mmengine's ``convert_sync_batchnorm`` (``sync_bn``) raise an
error rather than replace the layer by a plain SyncBatchNorm. One value per
channel is refused in training as BatchNorm refuses it; an
activation-checkpointing recomputation pools the past moments of its first
forward and updates nothing.

Across ranks (``sync=True`` with torch.distributed initialized) the current
moments and g, h are those of all ranks' samples (one differentiable
all-reduce and one plain all-reduce of 2 x the weight's size per layer and
step), so every rank computes what one process on the concatenated batch
would. Paper setting (COCO, Mask R-CNN R-50-FPN 1x, 2 images per GPU): CBN
in the neck and heads, the backbone's norms frozen, ``buffer_num=3``
(k = 4 iterations), burn-in of 8 of the 12 epochs. Not done here: the
gradient of the compensation with respect to W_t.
"""
import logging
import weakref
from typing import List, Optional

import torch
import torch.distributed as dist
import torch.fx
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from ...distributed.sync import get_world_size
from ._autocast import autocast_on, float32_off_autocast
from ._batch_stats import all_reduce_with_grad, channel_view, reduce_dims
from ._checks import check_input, check_num_features
from ._modes import (RefusesSyncBatchNormConversion, Replay,
                     check_values_per_channel, empty_output, fx_leaf_call)

_unlinked_warned = False


def _warn_unlinked() -> None:
    """Once per process: an unlinked CBN(compensate=True) is BatchNorm."""
    global _unlinked_warned
    if _unlinked_warned:
        return
    _unlinked_warned = True
    print_log(
        'CrossIterationBN(compensate=True) runs in a model whose '
        'convolutions are not linked: it normalizes with the current batch '
        'only (BatchNorm, as in its burn-in), without cross-iteration '
        "pooling; add dict(type='CBNLinkHook') to custom_hooks or call "
        'mmbcn.models.layers.link_cbn_convs(model)', logger='current',
        level=logging.WARNING)


_HISTORY = ('hist_mean', 'hist_sq', 'hist_cmean', 'hist_csq', 'hist_gmean',
            'hist_gsq')


class ConvOutputTracker:
    """Forward hook for convolutions: remembers, for each live output
    tensor, the conv that produced it (entries vanish with the tensor)."""

    def __init__(self):
        self._table = {}
        self.handles: List = []

    def __call__(self, conv, args, output):
        key = id(output)
        table = self._table
        table[key] = (weakref.ref(output,
                                  lambda _, k=key: table.pop(k, None)), conv)

    def producer(self, x: Tensor) -> Optional[nn.Module]:
        entry = self._table.get(id(x))
        if entry is not None and entry[0]() is x:
            return entry[1]
        return None

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def __getstate__(self):  # copies start with no live tensors
        return dict(_table={}, handles=[])


def link_cbn_convs(model: nn.Module) -> int:
    """Let every :class:`CrossIterationBN` of ``model`` find the conv that
    produced its input (see the module docstring). Returns the number of
    convs hooked; calling it again replaces the previous link."""
    norms = [m for m in model.modules() if isinstance(m, CrossIterationBN)]
    for norm in norms:
        if norm.tracker is not None:
            norm.tracker.remove()
    if not norms:
        return 0
    tracker = ConvOutputTracker()
    for m in model.modules():
        if isinstance(m, _ConvNd):
            tracker.handles.append(m.register_forward_hook(tracker))
    for norm in norms:
        norm.tracker = tracker
    return len(tracker.handles)


@MODELS.register_module('CrossIterationBN')
class CrossIterationBN(RefusesSyncBatchNormConversion, _BatchNorm):
    """Cross-Iteration Batch Normalization; see the module docstring.

    Args:
        num_features (int): Channels C of the (N, C, *) input.
        eps (float): Default: 1e-5.
        momentum (float): Rate of the running-statistics update, in (0, 1].
            Default: 0.1 (BatchNorm's).
        buffer_num (int): Past steps pooled (k - 1 in the paper), >= 0.
            Default: 3 (the paper's detection setting).
        burnin_iters (int): Steps of plain BatchNorm before pooling starts
            (counted by the layer's ``num_batches_tracked``). Default: 0;
            the paper burns in for 8 of 12 epochs: set it.
        compensate (bool): Taylor-compensate the past moments (needs
            :func:`link_cbn_convs`). Default: True.
        sync (bool): Moments over all ranks' samples when torch.distributed
            is initialized. Default: True.

    Buffers: BatchNorm's, plus the history ``hist_count`` and
    ``hist_mean``, ``hist_sq``, ``hist_cmean``, ``hist_csq`` (buffer_num, C),
    ``hist_gmean``, ``hist_gsq`` (buffer_num, C, weight size per filter),
    newest first.
    """
    _abbr_ = 'cbn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.1, buffer_num: int = 3,
                 burnin_iters: int = 0, compensate: bool = True,
                 sync: bool = True):
        check_num_features('CrossIterationBN', num_features)
        if not eps > 0:
            raise ValueError(f'CrossIterationBN: eps={eps!r} is not valid; '
                             'it must be > 0')
        if not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f'CrossIterationBN: momentum={momentum!r} is '
                             'not valid; it must be a number in (0, 1]')
        for name, value in (('buffer_num', buffer_num),
                            ('burnin_iters', burnin_iters)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f'CrossIterationBN: {name}={value!r} is '
                                 'not valid; it must be an int >= 0')
        super().__init__(num_features, eps, momentum, affine=True,
                         track_running_stats=True)
        self.buffer_num = buffer_num
        self.burnin_iters = burnin_iters
        self.compensate = compensate
        self.sync = sync
        self.tracker: Optional[ConvOutputTracker] = None
        self._replay = Replay()
        self.register_buffer('hist_count', torch.tensor(0, dtype=torch.long))
        for name in _HISTORY:
            self.register_buffer(name, torch.zeros(0))

    def reset_running_stats(self) -> None:
        """BatchNorm's reset, and an empty history."""
        super().reset_running_stats()
        if hasattr(self, 'hist_count'):  # not yet during __init__
            self.hist_count.zero_()
            for name in _HISTORY:
                setattr(self, name, getattr(self, name).new_zeros(0))

    def _check_input_dim(self, x: Tensor) -> None:
        check_input('CrossIterationBN', x, self.num_features)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in _HISTORY:  # size the lazily allocated history
            value = state_dict.get(prefix + name)
            if value is not None and value.shape != getattr(self,
                                                            name).shape:
                setattr(self, name, torch.zeros_like(
                    value, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_producer(self, conv) -> Optional[nn.Module]:
        if conv is None and self.tracker is None:
            _warn_unlinked()
            return None
        if conv is None:
            raise RuntimeError(
                'CrossIterationBN(compensate=True): the input does not come '
                'straight from a linked convolution; call '
                'mmbcn.models.layers.link_cbn_convs(model) once (or add '
                "dict(type='CBNLinkHook') to custom_hooks), put the CBN "
                'right after its conv, or use compensate=False')
        if conv.out_channels != self.num_features:
            raise RuntimeError(
                f'CrossIterationBN: the linked conv has {conv.out_channels} '
                f'output channels, the norm {self.num_features}')
        return conv

    def _moment_grads(self, x, weight, local_sum, local_sq, total):
        """(g, h): d mean / d W and d mean(x^2) / d W per output channel,
        shape (C, D), over all ranks' samples."""
        c = self.num_features
        grads = []
        for s in (local_sum, local_sq):
            (g, ) = torch.autograd.grad(s, weight, torch.ones_like(s),
                                        retain_graph=True, allow_unused=True)
            grads.append(torch.zeros_like(weight) if g is None else g)
        packed = torch.cat([g.reshape(c, -1) for g in grads], 1)
        if self.sync and get_world_size() > 1:
            dist.all_reduce(packed)
        packed = packed / total
        d = packed.shape[1] // 2
        return packed[:, :d], packed[:, d:]

    def _past_moments(self, weight: Optional[Tensor]):
        """The stored moments carried to the current weight."""
        n = int(self.hist_count)
        mean, sq = self.hist_mean[:n], self.hist_sq[:n]
        if weight is not None and n and self.hist_gmean.numel():
            w = weight.detach().reshape(self.num_features, -1).to(mean.dtype)
            mean = mean + torch.einsum('kcd,cd->kc', self.hist_gmean[:n],
                                       w) - self.hist_cmean[:n]
            sq = sq + torch.einsum('kcd,cd->kc', self.hist_gsq[:n],
                                   w) - self.hist_csq[:n]
        return mean, torch.maximum(sq, mean.square())

    @torch.no_grad()
    def _push(self, mean, sq, weight, grads) -> None:
        k, c = self.buffer_num, self.num_features
        d = weight[0].numel() if weight is not None else 0
        if self.hist_mean.shape != (k, c):
            for name in _HISTORY[:4]:
                setattr(self, name, mean.new_zeros(k, c))
        if grads is not None and self.hist_gmean.shape != (k, c, d):
            for name in _HISTORY[4:]:
                setattr(self, name, mean.new_zeros(k, c, d))
        if grads is None and self.hist_gmean.numel():
            # a step without compensation (frozen conv): zero terms
            zeros = self.hist_gmean.new_zeros(self.hist_gmean.shape[1:])
            grads = (zeros, zeros)
            weight = zeros
        for name, value in (('hist_mean', mean), ('hist_sq', sq)):
            buf = getattr(self, name)
            buf.copy_(torch.cat([value[None], buf[:-1]]))
        if grads is not None:
            w = weight.detach().reshape(c, -1)
            for gname, cname, g in (('hist_gmean', 'hist_cmean', grads[0]),
                                    ('hist_gsq', 'hist_csq', grads[1])):
                gbuf, cbuf = getattr(self, gname), getattr(self, cname)
                gbuf.copy_(torch.cat([g[None], gbuf[:-1]]))
                cbuf.copy_(torch.cat([(g * w).sum(1)[None], cbuf[:-1]]))
        self.hist_count.fill_(min(int(self.hist_count) + 1, k))

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, torch.fx.Proxy):
            return fx_leaf_call(self, x)
        self._check_input_dim(x)
        # the producing conv is looked up on the input itself (a float32
        # copy under autocast is a different tensor)
        conv = self.tracker.producer(x) if self.tracker is not None else None
        if autocast_on(x):
            return float32_off_autocast(self._forward, x, conv)
        return self._forward(x, conv)

    def _forward(self, x: Tensor, conv: Optional[nn.Module]) -> Tensor:
        synced = self.training and self.sync and get_world_size() > 1
        if x.numel() == 0 and not synced:
            return empty_output(x, self)  # zero gradients, no update
        if not self.training:
            return torch.nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight,
                self.bias, False, 0., self.eps)
        c = self.num_features
        dims = reduce_dims(x)
        local_sum, local_sq = x.sum(dims), x.square().sum(dims)
        sums = all_reduce_with_grad(torch.cat([
            local_sum, local_sq, x.new_full((1, ), float(x.numel() // c))]),
            self.sync)
        total = sums[-1].detach()
        if int(total) == 0:
            return empty_output(x, self)  # empty on every rank
        check_values_per_channel(int(total), x)
        mean, sq = sums[:c] / total, sums[c:2 * c] / total
        # a recomputation by activation checkpointing pools the past
        # moments of its first forward and updates nothing
        past = self._replay.take()
        update = past is None
        if update:
            past = self._pool_step(x, conv, local_sum, local_sq, total, mean,
                                   sq)
            self._replay.remember(past)
        past_mean, past_sq = past
        n = 1 + past_mean.shape[0]
        if n > 1:
            pooled_mean = (mean + past_mean.sum(0)) / n
            pooled_sq = (sq + past_sq.sum(0)) / n
        else:
            pooled_mean, pooled_sq = mean, sq
        var = (pooled_sq - pooled_mean.square()).clamp(min=0)
        scale = self.weight * torch.rsqrt(var + self.eps)
        y = x * channel_view(scale, x) + \
            channel_view(self.bias - pooled_mean * scale, x)
        if update:
            with torch.no_grad():
                m = total * n
                self.running_mean.lerp_(pooled_mean, self.momentum)
                self.running_var.lerp_(var * m / (m - 1).clamp(min=1),
                                       self.momentum)
                self.num_batches_tracked.add_(1)
        return y

    def _pool_step(self, x, conv, local_sum, local_sq, total, mean, sq):
        """The past moments this step pools (carried to the current weight;
        shape (0, C) in burn-in or unlinked), after which the current
        moments join the history."""
        step = int(self.num_batches_tracked) + 1
        none = mean.detach().new_zeros(0, self.num_features)
        if not (step > self.burnin_iters and self.buffer_num > 0):
            return none, none
        weight, grads = None, None
        if self.compensate:
            conv = self._check_producer(conv)
            if conv is None:  # no CBNLinkHook: BatchNorm, no history
                return none, none
        if torch.jit.is_tracing():
            raise RuntimeError(
                'CrossIterationBN: torch.jit.trace of a pooling training '
                'step is not supported (the history and its count live '
                'outside the graph); trace in eval mode or during burn-in')
        if self.compensate:
            if conv.weight.requires_grad and x.requires_grad:
                weight = conv.weight
                grads = self._moment_grads(x, weight, local_sum, local_sq,
                                           total)
        past_mean, past_sq = self._past_moments(weight)
        # copies: the history is shifted in place below
        past_mean, past_sq = past_mean.clone(), past_sq.clone()
        self._push(mean.detach(), sq.detach(), weight, grads)
        return past_mean, past_sq

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, '
                f'momentum={self.momentum}, buffer_num={self.buffer_num}, '
                f'burnin_iters={self.burnin_iters}, '
                f'compensate={self.compensate}, sync={self.sync}')
