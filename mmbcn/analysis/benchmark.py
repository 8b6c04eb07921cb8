"""Layer micro-benchmarks: time and activation memory against a baseline.

Timings are taken interleaved (baseline, candidate, baseline, ...) in one
process so that the ratio of each pair is measured under the same machine
conditions; the reported ratio is the median of the per-pair ratios.
Memory is the size of the tensors autograd saves for backward (the extra
activation memory a layer costs during training).
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn


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


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor,
          backward: bool) -> Callable[[], None]:
    if backward:
        def run():
            (out, ) = torch.autograd.grad(layer(x), x, grad)
            return out
    else:
        def run():
            with torch.no_grad():
                return layer(x)
    return run


def time_interleaved(fns: Sequence[Callable[[], object]], repeats: int,
                     device: torch.device) -> List[List[float]]:
    """Run every fn once per round (on CUDA, 10 queued calls per round so
    that the synchronization is not what is timed), ``repeats`` rounds;
    seconds per call."""
    calls = 10 if device.type == 'cuda' else 1
    for fn in fns:  # warm up
        fn()
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            _sync(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            _sync(device)
            ts.append((time.perf_counter() - start) / calls)
    return times


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
        results[backward] = time_interleaved(fns, repeats, device)
    for i, name in enumerate(names):
        med = {}
        ratio = {}
        for backward in (False, True):
            base, mine = results[backward][0], results[backward][i]
            med[backward] = statistics.median(mine) * 1e3
            ratio[backward] = statistics.median(
                m / b for m, b in zip(mine, base))
        rows.append(Row(group, shape_name, name, med[False], ratio[False],
                        med[True], ratio[True],
                        saved_bytes(layers[name], x) / 2**20))
    return rows


def format_markdown(rows: Sequence[Row], baseline_note: str = '') -> str:
    lines = ['| shape | layer | fwd ms | fwd ratio | fwd+bwd ms | '
             'fwd+bwd ratio | saved for bwd MB |',
             '|---|---|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r.shape} | {r.layer} | {r.fwd_ms:.2f} | '
                     f'{r.fwd_ratio:.2f} | {r.fwdbwd_ms:.2f} | '
                     f'{r.fwdbwd_ratio:.2f} | {r.saved_mb:.1f} |')
    if baseline_note:
        lines.append('')
        lines.append(baseline_note)
    return '\n'.join(lines)


def emit_report(text: str, out: str = None) -> None:
    """Print a benchmark's markdown report and, with ``out``, save it."""
    print('\n' + text)
    if out:
        with open(out, 'w') as f:
            f.write(text + '\n')
