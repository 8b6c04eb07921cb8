"""Per-channel batch moments with gradient, over every rank's samples.

The sums of one rank (shifted by a constant per-channel ``shift``, so the
variance keeps its precision when the mean is large against the spread)
go through one differentiable all-reduce (``torch.distributed.nn``) when a
process group with more than one rank is initialized and ``sync`` is set:
every rank then gets the moments of the concatenated batch, and the
gradient of each rank's input includes the other ranks' share, as one
process on all samples would compute. A rank with an empty batch still
takes part in the collective.
"""
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ...distributed.sync import get_world_size


def reduce_dims(x: Tensor) -> Tuple[int, ...]:
    """The dims of an (N, C, *) tensor that batch statistics reduce over."""
    return (0, ) + tuple(range(2, x.dim()))


def channel_view(t: Tensor, x: Tensor) -> Tensor:
    """A (C,) tensor shaped to broadcast against the (N, C, *) ``x``."""
    return t.view((1, -1) + (1, ) * (x.dim() - 2))


def all_reduce_with_grad(t: Tensor, sync: bool) -> Tensor:
    """Sum of ``t`` over ranks (with gradient) if ``sync`` and more than one
    rank, else ``t``."""
    if sync and get_world_size() > 1:
        return dist.nn.functional.all_reduce(t)
    return t


def batch_moments(x: Tensor, shift: Optional[Tensor] = None,
                  sync: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
    """(mean, biased variance, count) per channel of the (N, C, *) ``x`` over
    (N, *) and, if ``sync``, over every rank; mean and variance carry the
    gradient. ``count`` is a 0-d tensor (0 for an empty global batch, where
    mean and variance are 0)."""
    dims = reduce_dims(x)
    c = x.shape[1]
    xs = x if shift is None else x - channel_view(shift.detach().to(x.dtype),
                                                  x)
    count = x.numel() // c if c else 0
    sums = torch.cat([xs.sum(dims), xs.square().sum(dims),
                      xs.new_full((1, ), float(count))])
    sums = all_reduce_with_grad(sums, sync)
    total = sums[-1].detach()
    denom = total.clamp(min=1)
    mean_s = sums[:c] / denom
    var = (sums[c:2 * c] / denom - mean_s.square()).clamp(min=0)
    mean = mean_s if shift is None else mean_s + shift.detach().to(x.dtype)
    return mean, var, total
