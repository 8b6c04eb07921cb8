"""Statistics of BCN's batch stage across ranks, on torch.distributed.

Everything here uses plain ``torch.distributed`` collectives, so it runs on
gloo (CPU) and NCCL (GPU) alike. With no process group (or one rank) every
function is the single-process computation.

Micro-batch estimates (``sync='layer'``): each rank contributes the sums of
its batch, ``n * m`` and ``n * v`` with ``n`` its number of samples; one
all-reduce gives the moments of the concatenated batch, so every rank makes
the same update as one process seeing all samples would.

``sync='deferred'``: layers keep their per-step sums in a
:class:`DeferredStats` list and normalize with the estimates as they stood;
once per iteration :func:`flush_deferred` reduces the sums of every layer
with ONE coalesced all-reduce and applies the updates. Step t therefore
normalizes with the estimates of step t - 1: a one-step lag.

Large-batch mode: :func:`sync_batch_norm` is batch normalization with the
statistics of all ranks' samples and the matching backward (the sums of
``dy`` and ``dy * xhat`` are all-reduced too).
"""
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor


def get_world_size(group=None) -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group)
    return 1


def _all_reduce(tensor: Tensor, group=None) -> Tensor:
    if get_world_size(group) > 1:
        dist.all_reduce(tensor, group=group)
    return tensor


def reduce_batch_moments(m: Tensor, v: Tensor, count: int,
                         group=None) -> Tuple[Tensor, Tensor]:
    """Average per-channel ``m``, ``v`` over ranks, weighted by ``count``."""
    if get_world_size(group) == 1:
        return m, v
    packed = torch.cat([m * count, v * count,
                        m.new_full((1, ), float(count))])
    _all_reduce(packed, group)
    c = m.numel()
    total = packed[-1]
    return packed[:c] / total, packed[c:2 * c] / total


class DeferredStats:
    """Per-layer sums waiting for the iteration's coalesced reduction."""

    def __init__(self):
        self.pending: List[Tensor] = []  # each [n*m, n*v, n] of one call

    def push(self, m: Tensor, v: Tensor, count: int) -> None:
        self.pending.append(torch.cat([m * count, v * count,
                                       m.new_full((1, ), float(count))]))

    def __len__(self) -> int:
        return len(self.pending)


def flush_deferred(layers, group=None) -> int:
    """Reduce the pending sums of ``layers`` (BCN modules in deferred mode)
    with one all-reduce and apply their estimate updates in call order.

    Returns the number of collectives issued (0 or 1). Every rank must call
    it with the same layers in the same order (the model's module order).
    """
    chunks = [(layer, t) for layer in layers for t in layer.deferred.pending]
    if not chunks:
        return 0
    flat = torch.cat([t for _, t in chunks])
    issued = 0
    if get_world_size(group) > 1:
        dist.all_reduce(flat, group=group)
        issued = 1
    offset = 0
    for layer, t in chunks:
        c = (t.numel() - 1) // 2
        part = flat[offset:offset + t.numel()]
        offset += t.numel()
        total = part[-1]
        layer.update_estimates(part[:c] / total, part[c:2 * c] / total)
    for layer in layers:
        layer.deferred.pending.clear()
    return issued


def _global_moments(x: Tensor, group=None) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-channel mean and biased variance of (N, C, L) over all ranks.

    Each rank sends (count, mean, sum of squared deviations) of its samples;
    they are combined with the parallel-variance formula, which stays
    accurate when the mean is large against the spread.
    """
    n, c, length = x.shape
    local_mean = x.mean((0, 2))
    local_m2 = (x - local_mean[:, None]).square().sum((0, 2))
    packed = torch.cat([x.new_full((1, ), float(n * length)), local_mean,
                        local_m2])
    world = get_world_size(group)
    if world > 1:
        gathered = [torch.empty_like(packed) for _ in range(world)]
        dist.all_gather(gathered, packed, group=group)
        stacked = torch.stack(gathered)
    else:
        stacked = packed[None]
    counts, means, m2s = stacked[:, :1], stacked[:, 1:c + 1], \
        stacked[:, c + 1:]
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    m2 = m2s.sum(0) + (counts * (means - mean).square()).sum(0)
    return mean, m2 / total, total


class _SyncBatchNorm(torch.autograd.Function):
    """Batch norm over (N, C, L) with statistics over every rank's samples."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum,
                eps, group):
        mean, var, total = _global_moments(x, group)
        if running_mean is not None:
            with torch.no_grad():
                unbiased = var * total / (total - 1).clamp_(min=1)
                running_mean.lerp_(mean, momentum)
                running_var.lerp_(unbiased, momentum)
        invstd = torch.rsqrt(var + eps)
        xhat = (x - mean[:, None]) * invstd[:, None]
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.group = group
        ctx.total = total
        return xhat * weight[:, None] + bias[:, None]

    @staticmethod
    def backward(ctx, dy):
        xhat, weight, invstd = ctx.saved_tensors
        c = xhat.shape[1]
        local = torch.cat([dy.sum((0, 2)), (dy * xhat).sum((0, 2))])
        grad_bias, grad_weight = local[:c].clone(), local[c:].clone()
        _all_reduce(local, ctx.group)
        mean_dy = local[:c] / ctx.total
        mean_dy_xhat = local[c:] / ctx.total
        dx = (dy - mean_dy[:, None] - xhat * mean_dy_xhat[:, None]) * \
            (weight * invstd)[:, None]
        return dx, grad_weight, grad_bias, None, None, None, None, None


def sync_batch_norm(x: Tensor, running_mean: Optional[Tensor],
                    running_var: Optional[Tensor], weight: Tensor,
                    bias: Tensor, momentum: float, eps: float,
                    group=None) -> Tensor:
    """Batch normalization of an (N, C, L) input over all ranks' samples.

    Parameter gradients are this rank's contribution (DDP sums/averages
    them as for any parameter); the input gradient accounts for the
    statistics' dependence on every rank's input.
    """
    return _SyncBatchNorm.apply(x, weight, bias, running_mean, running_var,
                                momentum, eps, group)
