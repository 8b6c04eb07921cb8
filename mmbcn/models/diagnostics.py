"""Distance of channels from elimination singularities.

A channel is *eliminated* when the activation after its normalization layer
is (almost) always zero: the ReLU that follows never lets it through, it
carries no information and gets no gradient. For BatchNorm followed by ReLU
the pre-activation of channel c is ``gamma_c * xhat + beta_c`` with ``xhat``
of zero mean and unit variance over the batch, so how close the channel is
to elimination is set by ``beta_c / |gamma_c|``. mmbcn measures the same
quantity empirically for any normalization, from the output ``z`` of the
norm layer over the batch and positions (N, H, W)::

    d_c    = mean(z_c) / std(z_c)        standardized mean ("distance")
    p_c    = P(z_c > 0)                  fraction of active positions
    dead_c = p_c < dead_threshold        (default 0.01)
    near_c = d_c < near_threshold        (default -2: for a Gaussian z,
                                           fewer than ~2% of positions pass)

Per layer: the fraction of dead channels, the fraction of channels near
elimination, and the mean and minimum of d_c. For BN at a large batch,
``d_c = beta_c / |gamma_c|`` exactly; channel-based normalizations (GN, LN)
do not constrain d_c, which is why they can drift towards elimination.
"""
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional

import torch
import torch.nn as nn

from .layers.norm_types import norm_layers


@dataclass
class LayerStats:
    layer: str
    channels: int
    dead_fraction: float
    near_fraction: float
    mean_distance: float
    min_distance: float

    def as_dict(self) -> dict:
        return asdict(self)


def channel_stats(z: torch.Tensor, dead_threshold: float = 0.01,
                  near_threshold: float = -2.0, name: str = ''
                  ) -> LayerStats:
    """Statistics of one norm output ``z`` of shape (N, C, *)."""
    z = z.detach().float()
    flat = z.transpose(0, 1).reshape(z.shape[1], -1)
    std, mean = torch.std_mean(flat, dim=1, correction=0)
    distance = mean / std.clamp(min=1e-12)
    # a channel constant at or below zero is at the singularity
    distance = torch.where(std > 1e-12, distance,
                           torch.where(mean > 0, torch.full_like(mean, 1e6),
                                       torch.full_like(mean, -1e6)))
    active = (flat > 0).float().mean(1)
    return LayerStats(name, int(z.shape[1]),
                      float((active < dead_threshold).float().mean()),
                      float((distance < near_threshold).float().mean()),
                      float(distance.clamp(-1e3, 1e3).mean()),
                      float(distance.min()))


class SingularityProbe:
    """Forward hooks on the norm layers of a model that record
    :class:`LayerStats` of their outputs, without changing anything."""

    def __init__(self, model: nn.Module, norm_types: Optional[tuple] = None,
                 dead_threshold: float = 0.01, near_threshold: float = -2.0):
        if norm_types is None:
            self.layers = list(norm_layers(model))
        else:
            self.layers = [(n, m) for n, m in model.named_modules()
                           if isinstance(m, norm_types)]
        self.dead_threshold = dead_threshold
        self.near_threshold = near_threshold
        self.records: Dict[str, List[LayerStats]] = OrderedDict()
        self._handles = []

    def _hook(self, name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() >= 2:
                self.records.setdefault(name, []).append(channel_stats(
                    output, self.dead_threshold, self.near_threshold, name))
        return hook

    def __enter__(self):
        self.records.clear()
        self._handles = [m.register_forward_hook(self._hook(n))
                         for n, m in self.layers]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def summary(self) -> List[LayerStats]:
        """One entry per layer, averaged over the calls recorded."""
        out = []
        for name, stats in self.records.items():
            k = len(stats)
            out.append(LayerStats(
                name, stats[0].channels,
                sum(s.dead_fraction for s in stats) / k,
                sum(s.near_fraction for s in stats) / k,
                sum(s.mean_distance for s in stats) / k,
                min(s.min_distance for s in stats)))
        return out


def aggregate(stats: Iterable[LayerStats]) -> Dict[str, float]:
    """Model-level numbers: channel-weighted dead / near fractions."""
    stats = list(stats)
    total = sum(s.channels for s in stats) or 1
    return dict(
        dead_fraction=sum(s.dead_fraction * s.channels for s in stats) /
        total,
        near_fraction=sum(s.near_fraction * s.channels for s in stats) /
        total,
        mean_distance=sum(s.mean_distance * s.channels for s in stats) /
        total,
        layers=len(stats))
