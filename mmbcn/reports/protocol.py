"""The papers' protocol as one table: per scheme and pretraining batch, the
pretrained backbones' accuracy, the fine-tuned detector and segmenter, and
the same schemes trained from scratch, each as mean ± std over seeds (n).

:func:`protocol_rows` takes :class:`Cell` s (the runs of one table row,
grouped by whoever ran them, ``tools/reproduce.py``); :func:`plot_protocol`
draws the fine-tuned and from-scratch metrics side by side with std error
bars.
"""
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from .results import RunResult

#: (table column, group of runs in a Cell, metric of those runs)
PROTOCOL_COLUMNS = (
    ('pretrain top-1', 'pretrain', 'top-1 acc'),
    ('bbox mAP', 'det', 'bbox mAP'),
    ('segm mAP', 'det', 'segm mAP'),
    ('mIoU', 'seg', 'mIoU'),
    ('scratch bbox mAP', 'scratch_det', 'bbox mAP'),
    ('scratch segm mAP', 'scratch_det', 'segm mAP'),
    ('scratch mIoU', 'scratch_seg', 'mIoU'),
)


@dataclass
class Cell:
    """The runs of one row: ``pretrain`` (the classifiers, both backbones,
    every seed), ``det`` / ``seg`` (fine-tuned from them) and
    ``scratch_det`` / ``scratch_seg`` (the same scheme from scratch)."""
    scheme: str
    pretraining: str
    pretrain: List[RunResult] = field(default_factory=list)
    det: List[RunResult] = field(default_factory=list)
    seg: List[RunResult] = field(default_factory=list)
    scratch_det: List[RunResult] = field(default_factory=list)
    scratch_seg: List[RunResult] = field(default_factory=list)


def _stats(values: Sequence[float]):
    if not values:
        return None, None
    return (statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else None)


def protocol_rows(cells: Sequence[Cell]) -> List[Dict[str, object]]:
    """One row per cell: each column of :data:`PROTOCOL_COLUMNS` as mean
    and ``<column> std`` over the cell's finished runs, and ``n``: the runs
    per column group (``3``, or e.g. ``3, scratch 2`` when they differ).
    Unfinished runs are not averaged."""
    rows = []
    for cell in cells:
        row = dict(scheme=cell.scheme, pretraining=cell.pretraining)
        counts = {}
        for column, group, metric in PROTOCOL_COLUMNS:
            runs = [r for r in getattr(cell, group) if r.finished]
            values = [r.metrics[metric] for r in runs if metric in r.metrics]
            row[column], row[f'{column} std'] = _stats(values)
            if values:
                counts[group] = len(values)
        fine = {counts.get(g) for g in ('det', 'seg') if g in counts}
        scratch = {counts.get(g) for g in ('scratch_det', 'scratch_seg')
                   if g in counts}
        parts = []
        if fine:
            parts.append('/'.join(str(n) for n in sorted(fine)))
        if scratch and scratch != fine:
            parts.append('scratch ' +
                         '/'.join(str(n) for n in sorted(scratch)))
        row['n'] = ', '.join(parts) or '0'
        rows.append(row)
    return rows


def plot_protocol(rows, out_dir: str) -> List[str]:
    """Bar charts (one file per metric: bbox mAP, mIoU) of the fine-tuned
    and the from-scratch means with std error bars; returns the paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    for metric, name in (('bbox mAP', 'det'), ('mIoU', 'seg')):
        series = [(col, label) for col, label in (
            (metric, 'fine-tuned from the pretrained backbone'),
            (f'scratch {metric}', 'from scratch'))
            if any(r.get(col) is not None for r in rows)]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows)), 4))
        width = 0.38
        for k, (col, label) in enumerate(series):
            xs = [i + (k - (len(series) - 1) / 2) * width
                  for i in range(len(rows))]
            means = [r.get(col) or 0 for r in rows]
            errs = [r.get(f'{col} std') or 0 for r in rows]
            ax.bar(xs, means, width, yerr=errs, capsize=3, label=label,
                   color=f'C{k}')
        ax.set_xticks(range(len(rows)),
                      [f"{r['scheme']}\n{r['pretraining']}" for r in rows],
                      fontsize=8)
        ax.set(title=f'{name}: final {metric} (mean ± std over seeds)',
               ylabel=metric)
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = osp.join(out_dir, f'protocol_{name}.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
