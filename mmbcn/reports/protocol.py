"""The papers' protocol as one table: per scheme and pretraining batch, the
pretrained backbones' accuracy, the fine-tuned detector and segmenter, and
the same schemes trained from scratch, each as mean ± std over seeds (n).

:func:`protocol_rows` takes :class:`Cell` s (the runs of one table row,
grouped by whoever ran them, ``tools/reproduce.py``); :func:`plot_protocol`
draws the fine-tuned and from-scratch metrics side by side with std error
bars, :func:`plot_settings` the fine-tuned metrics under several settings
(lr, schedule) of the same fine-tuning.
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


def plot_settings(settings: Sequence[tuple], out_dir: str) -> List[str]:
    """Bar charts of the fine-tuned metrics under several settings of the
    same fine-tuning (``settings``: ``(label, rows)`` pairs, rows as from
    :func:`protocol_rows`): per scheme one bar per setting, std error bars;
    one file per metric, ``settings_{det,seg}.png``. Only the schemes with
    a value under at least two settings are drawn; returns the paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    for metric, name in (('bbox mAP', 'det'), ('mIoU', 'seg')):
        seen = {}
        for _, rows in settings:
            for r in rows:
                if r.get(metric) is not None:
                    key = (r['scheme'], r['pretraining'])
                    seen[key] = seen.get(key, 0) + 1
        keys = [key for key, count in seen.items() if count >= 2]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(max(7, 1.8 * len(keys)), 4))
        width = 0.8 / len(settings)
        for k, (label, rows) in enumerate(settings):
            by_key = {(r['scheme'], r['pretraining']): r for r in rows}
            xs = [i + (k - (len(settings) - 1) / 2) * width
                  for i in range(len(keys))]
            means = [(by_key.get(key) or {}).get(metric) or 0 for key in keys]
            errs = [(by_key.get(key) or {}).get(f'{metric} std') or 0
                    for key in keys]
            ax.bar(xs, means, width, yerr=errs, capsize=3, label=label,
                   color=f'C{k}')
        ax.set_xticks(range(len(keys)),
                      [f'{s}\n{p}' for s, p in keys], fontsize=8)
        ax.set(title=f'{name}: fine-tuned {metric} per setting, mean ± std '
               'over seeds', ylabel=metric)
        ax.grid(axis='y', alpha=0.3)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # room for the legend
        ax.legend(fontsize=8, ncol=2, loc='upper left')
        fig.tight_layout()
        path = osp.join(out_dir, f'settings_{name}.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
