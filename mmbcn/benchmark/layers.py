"""Layer micro-benchmarks: time and activation memory against a baseline.

Timings are taken interleaved (baseline, candidate, baseline, ...) in one
process (:func:`mmbcn.benchmark.timing.time_rounds`) so that the ratio of each pair is measured under the same machine
conditions; the reported ratio is the median of the per-pair ratios.
Memory is the size of the tensors autograd saves for backward (the extra
activation memory a layer costs during training).
"""
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from ..reports.tables import markdown_table
from .timing import ratio_stats, time_rounds


def resnet50_fpn_norm_shapes(height: int = 800, width: int = 1216):
    """(name, channels, h, w) of the norm inputs at the end of each ResNet-50
    stage (strides 4..32) for an input of ``height`` x ``width``; the FPN
    convs see 256 channels at the same sizes."""
    return tuple((f'res{i + 2} C={c} {height // s}x{width // s}', c,
                  height // s, width // s)
                 for i, (c, s) in enumerate(((256, 4), (512, 8), (1024, 16),
                                             (2048, 32))))


def resnet50_fpn_conv_shapes(height: int = 800, width: int = 1216):
    """(name, in, out, kernel, h, w) of representative ResNet-50/FPN convs."""
    convs = ((64, 64, 3, 4), (512, 128, 1, 8), (256, 256, 3, 16),
             (512, 2048, 1, 32), (256, 256, 3, 8))
    names = ('res2 3x3', 'res3 1x1', 'res4 3x3', 'res5 1x1', 'fpn 3x3')
    return tuple((f'{n} {i}->{o} {height // s}x{width // s}', i, o, k,
                  height // s, width // s)
                 for n, (i, o, k, s) in zip(names, convs))


def _step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor,
          backward: bool) -> Callable[[int], object]:
    if backward:
        def run(_round):
            (out, ) = torch.autograd.grad(layer(x), x, grad)
            return out
    else:
        def run(_round):
            with torch.no_grad():
                return layer(x)
    return run


def saved_bytes(layer: nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct tensors autograd saves for backward of ``layer(x)``,
    not counting the input itself and the layer's own parameters/buffers."""
    seen: Dict[Tuple[int, int], int] = {}
    exclude = {x.untyped_storage().data_ptr()}
    exclude.update(t.untyped_storage().data_ptr()
                   for t in list(layer.parameters()) + list(layer.buffers()))

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in exclude:
            seen[(ptr, t.untyped_storage().nbytes())] = \
                t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(seen.values())


@dataclass
class Row:
    group: str
    shape: str
    layer: str
    fwd_ms: float
    fwd_ratio: float
    fwdbwd_ms: float
    fwdbwd_ratio: float
    saved_mb: float


def compare_layers(group: str, shape_name: str,
                   layers: Dict[str, nn.Module], x: torch.Tensor,
                   repeats: int) -> List[Row]:
    """Time every layer on ``x``; the first entry is the baseline."""
    device = x.device
    x = x.detach().requires_grad_(True)
    names = list(layers)
    grad = None
    rows = []
    results = {}
    for backward in (False, True):
        fns = []
        for name in names:
            if grad is None:
                with torch.no_grad():
                    grad = torch.randn_like(layers[name](x))
            fns.append(_step(layers[name], x, grad, backward))
        # on CUDA, 10 queued calls per round: the synchronization is not
        # what is timed
        results[backward] = time_rounds(
            fns, repeats, warmup=2, alternate=False, device=device,
            calls=10 if device.type == 'cuda' else 1)
    for i, name in enumerate(names):
        med = {}
        ratio = {}
        for backward in (False, True):
            base, mine = results[backward][0], results[backward][i]
            med[backward] = statistics.median(mine) * 1e3
            ratio[backward] = ratio_stats(mine, base)[0]
        rows.append(Row(group, shape_name, name, med[False], ratio[False],
                        med[True], ratio[True],
                        saved_bytes(layers[name], x) / 2**20))
    return rows


def format_markdown(rows: Sequence[Row], baseline_note: str = '') -> str:
    columns = ('shape', 'layer', 'fwd_ms', 'fwd_ratio', 'fwdbwd_ms',
               'fwdbwd_ratio', 'saved_mb')
    text = markdown_table(
        [asdict(r) for r in rows], columns,
        headers=dict(fwd_ms='fwd ms', fwd_ratio='fwd ratio',
                     fwdbwd_ms='fwd+bwd ms', fwdbwd_ratio='fwd+bwd ratio',
                     saved_mb='saved for bwd MB'),
        formats=dict(saved_mb='.1f'), right=columns[2:], default='.2f')
    return text + ('\n\n' + baseline_note if baseline_note else '')
