"""Result tables and plots over many runs (work dirs).

Runs that differ only in their seed (same config, scheme, images per GPU,
GPUs and schedule) form one group, reported as mean ± std with the number of
runs n. Columns are the task's metrics plus speed and memory; ``baseline``
adds, per task, the difference of every group's main metric to the group of
the baseline scheme with the same task, model and backbone;
``singularity`` adds the final model-level dead and near-elimination
fractions each run's SingularityHook logged (``singularity.jsonl``, see
:mod:`mmbcn.models.diagnostics`).

Every row has a status: 'finished', 'stopped at N' (killed or crashed),
'non-finite' (a loss or metric became inf / NaN) or 'mixed' (runs of
different schemes in one work dir); runs of different status are never
averaged together, and only finished rows serve as the baseline. A work
dir whose files cannot be read is left out with a one-line warning naming
the file.
"""
import math
import os.path as osp
import statistics
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from . import tables
from .results import (MAIN_METRIC, RunReadError, RunResult, find_work_dirs,
                      read_run)
from .singularity import final_fractions
from .tables import MISSING, markdown_table

METRIC_COLUMNS = ('bbox mAP', 'bbox AP50', 'bbox AP75', 'segm mAP',
                  'segm AP50', 'segm AP75', 'mIoU', 'mAcc')
BASE_COLUMNS = ('task', 'model', 'backbone', 'scheme', 'imgs/GPU x GPUs',
                'schedule', 'status', 'last iter')
SINGULARITY_COLUMNS = ('dead fraction', 'near fraction')
TAIL_COLUMNS = ('sec/iter', 'peak mem MB', 'n', 'work dir')


def group_key(run: RunResult) -> tuple:
    config = run.config
    if run.seed is not None:  # run_matrix names seeded work dirs *_seed<N>
        config = config.replace(f'_seed{run.seed}', '')
    return (run.task, run.model, run.backbone, run.scheme, run.imgs_per_gpu,
            run.gpus, run.schedule, config, run.status)


def _mean_std(values: List[float]):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def summarize(runs: Sequence[RunResult], baseline: Optional[str] = None,
              singularity: bool = False) -> List[Dict[str, object]]:
    """One row per group of runs: means, stds (``<col> std``) and n;
    ``singularity``: the :data:`SINGULARITY_COLUMNS` too (missing where no
    run of the group has a ``singularity.jsonl``)."""
    groups: Dict[tuple, List[RunResult]] = OrderedDict()
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for key, members in groups.items():
        task, model, backbone, scheme, ipg, gpus, schedule, _, status = key
        row: Dict[str, object] = OrderedDict(
            task=task, model=model, backbone=backbone, scheme=scheme)
        row['imgs/GPU x GPUs'] = f'{ipg or "?"} x {gpus or "?"}'
        row['schedule'] = schedule
        row['status'] = status
        last = sorted({m.last_iter for m in members})
        row['last iter'] = str(last[0]) if len(last) == 1 else \
            f'{last[0]}–{last[-1]}'
        for col in METRIC_COLUMNS:
            mean, std = _mean_std([m.metrics.get(col) for m in members])
            if mean is not None:
                row[col] = mean
                row[f'{col} std'] = std
        if singularity:
            _add_singularity(row, members)
        row['sec/iter'], row['sec/iter std'] = _mean_std(
            [m.sec_per_iter for m in members])
        row['peak mem MB'] = max((m.peak_memory_mb for m in members
                                  if m.peak_memory_mb is not None),
                                 default=None)
        row['n'] = len(members)
        row['work dir'] = ', '.join(m.work_dir for m in members)
        rows.append(row)
    if baseline:
        _add_baseline(rows, baseline)
    return rows


#: (task, column of summarize's rows, column of :func:`scheme_rows`)
SCHEME_COLUMNS = (('det', 'bbox mAP', 'bbox mAP'),
                  ('det', 'segm mAP', 'segm mAP'),
                  ('seg', 'mIoU', 'mIoU'),
                  ('det', 'sec/iter', 'det sec/iter'),
                  ('seg', 'sec/iter', 'seg sec/iter'))


def scheme_rows(rows, columns=SCHEME_COLUMNS) -> List[Dict[str, object]]:
    """:func:`summarize`'s rows (one per task and group) as one row per
    scheme, the tasks side by side: each ``(task, column, name)`` of
    ``columns`` becomes ``name`` (with its std, so :func:`to_markdown`
    writes mean ± std), and ``n`` the number of runs of every task (``3``,
    or ``det 3, seg 2`` when they differ). Rows of unfinished runs are
    left out."""
    merged: Dict[str, Dict[str, object]] = OrderedDict()
    counts: Dict[str, Dict[str, int]] = OrderedDict()
    for row in rows:
        if row.get('status') != 'finished':
            continue
        scheme, task = row['scheme'], row['task']
        out = merged.setdefault(scheme, OrderedDict(scheme=scheme))
        counts.setdefault(scheme, OrderedDict())[task] = row['n']
        for col_task, col, name in columns:
            if col_task == task and col in row:
                out[name] = row[col]
                out[f'{name} std'] = row.get(f'{col} std')
    for scheme, out in merged.items():
        n = counts[scheme]
        out['n'] = str(next(iter(n.values()))) if len(set(n.values())) == 1 \
            else ', '.join(f'{t} {k}' for t, k in n.items())
    return list(merged.values())


def _add_singularity(row, members: Sequence[RunResult]) -> None:
    finals = [f for f in (final_fractions(m.work_dir) for m in members)
              if f is not None]
    for i, col in enumerate(SINGULARITY_COLUMNS):
        mean, std = _mean_std([f[i] for f in finals])
        row[col] = mean
        row[f'{col} std'] = std


def _add_baseline(rows, baseline: str) -> None:
    ref = {}
    for row in rows:
        if row['scheme'] == baseline and row['status'] == 'finished':
            ref[(row['task'], row['model'], row['backbone'])] = row
    for row in rows:
        base = ref.get((row['task'], row['model'], row['backbone']))
        metric = MAIN_METRIC.get(row['task'])
        if base is None or metric not in row or metric not in base:
            row[f'Δ vs {baseline}'] = None
        else:
            row[f'Δ vs {baseline}'] = row[metric] - base[metric]


def sort_rows(rows, by: str = 'scheme', descending: bool = False):
    def key(row):
        value = row.get(by)
        missing = value is None
        if isinstance(value, (int, float)):
            value = -value if descending else value
        return (str(row.get('task')), missing, value if not missing else 0)
    return sorted(rows, key=key)


def table_columns(rows) -> List[str]:
    present = [c for c in METRIC_COLUMNS if any(c in r for r in rows)]
    extra = [k for r in rows for k in r if k.startswith('Δ vs ')]
    singularity = [c for c in SINGULARITY_COLUMNS if any(c in r for r in rows)]
    return list(BASE_COLUMNS) + present + list(OrderedDict.fromkeys(extra)) \
        + singularity + list(TAIL_COLUMNS)


def _cell(row, col) -> str:
    value = row.get(col)
    if value is None:
        return MISSING
    if isinstance(value, float):
        digits = 3 if col.endswith('sec/iter') or \
            col in SINGULARITY_COLUMNS or \
            'AP' in col or col.startswith(('bbox', 'segm', 'Δ')) else 2
        if col == 'peak mem MB':
            return f'{value:.0f}'
        text = f'{value:.{digits}f}'
        std = row.get(f'{col} std')
        if std is not None and not math.isnan(std):
            text += f' ± {std:.{digits}f}'
        return text
    return str(value)


def to_markdown(rows, columns=None) -> str:
    columns = columns or table_columns(rows)
    return markdown_table(rows, columns, formats={
        c: (lambda row, c=c: _cell(row, c)) for c in columns})


def write_csv(rows, path: str, columns=None) -> None:
    columns = list(columns or table_columns(rows))
    std_cols = [f'{c} std' for c in columns if any(f'{c} std' in r
                                                   for r in rows)]
    tables.write_csv(rows, path, columns + std_cols)


def _warn(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr)


def collect(paths: Sequence[str], warn=_warn) -> List[RunResult]:
    """The runs of the work dirs at or below ``paths``; a work dir whose
    files cannot be read is skipped with ``warn('skipped <dir>: <file>:
    <why>')``."""
    dirs = find_work_dirs(paths)
    if not dirs:
        raise FileNotFoundError(
            f'no mmengine work dirs (with a <timestamp>/ log folder) under '
            f'{", ".join(paths)}')
    runs = []
    for work_dir in dirs:
        try:
            runs.append(read_run(work_dir))
        except RunReadError as err:
            warn(f'skipped {work_dir}: {err}')
    if not runs:
        raise FileNotFoundError(f'no readable work dirs under '
                                f'{", ".join(paths)}')
    return runs


def plot_runs(runs: Sequence[RunResult], rows, out_dir: str) -> List[str]:
    """Loss and validation curves (one line per scheme, one file per task)
    and bar charts of the main metric with std error bars; returns paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    for task in sorted({r.task for r in runs if r.task}):
        task_runs = [r for r in runs if r.task == task]
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
        for scheme in sorted({r.scheme for r in task_runs}):
            members = [r for r in task_runs if r.scheme == scheme]
            for i, run in enumerate(members):
                label = scheme if i == 0 else None
                color = f'C{sorted({r.scheme for r in task_runs}).index(scheme) % 10}'
                if run.train_curve:
                    xs, ys = zip(*_smooth(run.train_curve))
                    ax_loss.plot(xs, ys, color=color, label=label, lw=1.2)
                if run.val_curve:
                    xs, ys = zip(*run.val_curve)
                    ax_val.plot(xs, ys, 'o-', color=color, label=label)
        metric = MAIN_METRIC.get(task, 'metric')
        ax_loss.set(title=f'{task}: training loss', xlabel='iteration',
                    ylabel='loss (smoothed)')
        ax_val.set(title=f'{task}: validation {metric}',
                   xlabel='iteration', ylabel=metric)
        for ax in (ax_loss, ax_val):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        fig.tight_layout()
        path = osp.join(out_dir, f'curves_{task}.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

        task_rows = [r for r in rows if r['task'] == task and
                     r.get(metric) is not None]
        if task_rows:
            fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(task_rows)), 4))
            labels = [f"{r['scheme']}\n{r['backbone']}" for r in task_rows]
            means = [r[metric] for r in task_rows]
            errs = [r.get(f'{metric} std') or 0 for r in task_rows]
            ax.bar(range(len(task_rows)), means, yerr=errs, capsize=4,
                   color=[f'C{i % 10}' for i in range(len(task_rows))])
            ax.set_xticks(range(len(task_rows)), labels, fontsize=8)
            ax.set(title=f'{task}: final {metric} (mean ± std over seeds)',
                   ylabel=metric)
            ax.grid(axis='y', alpha=0.3)
            fig.tight_layout()
            path = osp.join(out_dir, f'final_{task}.png')
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


def _smooth(curve, window: int = 5):
    out = []
    for i in range(len(curve)):
        chunk = curve[max(0, i - window + 1):i + 1]
        out.append((curve[i][0], sum(y for _, y in chunk) / len(chunk)))
    return out
