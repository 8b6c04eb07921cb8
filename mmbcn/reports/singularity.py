"""Elimination-singularity reports of runs: read what
:class:`~mmbcn.engine.hooks.SingularityHook` logged during training
(``<work_dir>/singularity.jsonl``) or measure a checkpoint, then write
per-layer tables (markdown, CSV) and plots.

The statistics, their formulas and thresholds are those of
:mod:`mmbcn.models.diagnostics`.

A checkpoint is measured in **train mode** by default: the forward of a
training step (``mode='loss'`` on the train split), so BN normalizes with
the batch's statistics and BCN with its estimates after one update, exactly
what the hook records during training. Every buffer (running statistics,
counters) is restored after each batch, so the measurement changes nothing
and each batch sees the checkpoint's own statistics. ``mode='eval'``
measures the network as it predicts (``mode='predict'`` on the val split,
running statistics), which is what a deployed model computes.
"""
import csv
import glob
import json
import math
import os
import os.path as osp
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import CheckpointLoader

from .. import apis
from ..compat import CheckpointError
from ..models.diagnostics import LayerStats, SingularityProbe, aggregate
from .results import RunResult, config_dump, describe_config
from .tables import MISSING, markdown_table
from ..engine.utils import unwrap_model

LOG_NAME = 'singularity.jsonl'
FIELDS = ('iter', 'layer', 'channels', 'dead_fraction', 'near_fraction',
          'mean_distance', 'min_distance')
MODES = ('train', 'eval')
_NAME_HINT = (f'a training work dir with {LOG_NAME} (written by '
              'SingularityHook, e.g. the configs/shapes runs), a folder '
              'holding such work dirs, or a checkpoint file (.pth)')


@dataclass
class SingularityRun:
    """The measurements of one run: ``iter -> per-layer stats``."""
    source: str
    label: str = ''
    task: str = ''
    scheme: str = ''
    config: str = ''
    seed: Optional[int] = None
    measurements: Dict[int, List[LayerStats]] = field(
        default_factory=OrderedDict)

    @property
    def final_iter(self) -> int:
        return max(self.measurements)

    @property
    def final(self) -> List[LayerStats]:
        return self.measurements[self.final_iter]

    def curve(self) -> List[Tuple[int, Dict[str, float]]]:
        """Model-level numbers (:func:`aggregate`) per measured iteration."""
        return [(it, aggregate(stats))
                for it, stats in sorted(self.measurements.items())]


# ---------------------------------------------------------------------------
# reading the hook's log
# ---------------------------------------------------------------------------
def read_log(path: str) -> Dict[int, List[LayerStats]]:
    """Parse a ``singularity.jsonl``; ``iter -> stats`` in the order logged.

    A layer logged twice at one iteration (a resumed run measuring an
    iteration again) keeps its later record. A malformed line is a
    ValueError naming the file and line number.
    """
    by_iter: Dict[int, Dict[str, LayerStats]] = OrderedDict()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f'{path}:{lineno}'
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f'{where}: not a JSON line ({e.msg}); each line must be '
                    f'one JSON object with {", ".join(FIELDS)} (a line cut '
                    'off when training was killed can be deleted)') from None
            if not isinstance(record, dict):
                raise ValueError(f'{where}: expected a JSON object with '
                                 f'{", ".join(FIELDS)}, got {line.strip()!r}')
            missing = [k for k in FIELDS if k not in record]
            if missing:
                raise ValueError(f'{where}: missing {", ".join(missing)}; '
                                 f'each line needs {", ".join(FIELDS)}')
            try:
                step = int(record['iter'])
                stats = LayerStats(
                    str(record['layer']), int(record['channels']),
                    *(float(record[k]) for k in FIELDS[3:]))
            except (TypeError, ValueError):
                raise ValueError(
                    f'{where}: iter and channels must be integers and the '
                    f'fractions and distances numbers, got '
                    f'{line.strip()!r}') from None
            by_iter.setdefault(step, OrderedDict())[stats.layer] = stats
    if not by_iter:
        raise ValueError(f'{path} holds no measurements (empty file)')
    return OrderedDict((it, list(layers.values()))
                       for it, layers in by_iter.items())


def _describe(run: SingularityRun, cfg, name: str) -> None:
    facts = describe_config(cfg, RunResult(work_dir=run.source))
    run.task, run.scheme, run.seed = facts.task, facts.scheme, facts.seed
    run.config = name


def read_work_dir(work_dir: str) -> SingularityRun:
    """The hook's measurements of a work dir, with task and scheme from the
    config the runner dumped there (if any)."""
    run = SingularityRun(source=work_dir)
    run.measurements = read_log(osp.join(work_dir, LOG_NAME))
    dump = config_dump(work_dir)
    if dump is not None:
        _describe(run, Config.fromfile(dump),
                  osp.splitext(osp.basename(dump))[0])
    return run


def final_fractions(work_dir: str) -> Optional[Tuple[float, float]]:
    """Model-level (dead, near) fraction at the last measurement of a work
    dir, or None when it has no ``singularity.jsonl``."""
    path = osp.join(work_dir, LOG_NAME)
    if not osp.isfile(path):
        return None
    log = read_log(path)
    final = aggregate(log[max(log)])
    return final['dead_fraction'], final['near_fraction']


def find_sources(paths: Sequence[str]) -> List[Tuple[str, str]]:
    """``(kind, path)`` per run: ``'work_dir'`` or ``'checkpoint'``.

    A folder without ``singularity.jsonl`` is searched recursively for work
    dirs that have one. Anything else is a ValueError naming the path and
    what is valid.
    """
    found = []
    for path in paths:
        if osp.isfile(path):
            if not path.endswith(('.pth', '.pt')):
                raise ValueError(f'{path} is a file but not a checkpoint '
                                 f'(.pth); valid: {_NAME_HINT}')
            found.append(('checkpoint', path))
        elif osp.isdir(path):
            logs = sorted(glob.glob(osp.join(path, '**', LOG_NAME),
                                    recursive=True))
            if not logs:
                ckpts = sorted(glob.glob(osp.join(path, '*.pth')))
                hint = (f' (it holds checkpoints: pass one, e.g. '
                        f'{ckpts[-1]})' if ckpts else '')
                raise ValueError(f'{path} is neither a work dir with '
                                 f'{LOG_NAME} nor a folder holding one'
                                 f'{hint}; valid: {_NAME_HINT}')
            found += [('work_dir', osp.dirname(log)) for log in logs]
        else:
            raise ValueError(f'{path} does not exist; valid: {_NAME_HINT}')
    return found


# ---------------------------------------------------------------------------
# measuring a model / a checkpoint
# ---------------------------------------------------------------------------
def measure_model(model: nn.Module, batches: Iterable, mode: str = 'train',
                  dead_threshold: float = 0.01, near_threshold: float = -2.0,
                  echo: Optional[Callable[[str], None]] = None
                  ) -> List[LayerStats]:
    """Per-layer stats of an mmengine model over ``batches`` (dataloader
    batches), averaged over the batches (:meth:`SingularityProbe.summary`).

    ``mode='train'``: training-step forward (``mode='loss'``) in train mode;
    ``'eval'``: prediction forward in eval mode. No gradient; every buffer
    is restored after each batch, so the model is left as it was.
    """
    if mode not in MODES:
        raise ValueError(f'mode={mode!r} is not valid; choose from '
                         f'{", ".join(MODES)}')
    training = mode == 'train'
    was_training = model.training
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    probe = SingularityProbe(model, None, dead_threshold, near_threshold)
    if not probe.layers:
        raise ValueError('the model has no normalization layers to measure')
    model.train(training)
    try:
        with torch.no_grad(), probe:
            for i, batch in enumerate(batches, 1):
                data = model.data_preprocessor(batch, training)
                forward = 'loss' if training else 'predict'
                if isinstance(data, dict):
                    model(**data, mode=forward)
                else:
                    model(*data, mode=forward)
                for buf, value in saved:
                    buf.copy_(value)
                if echo:
                    echo(f'  batch {i}: measured')
    finally:
        for buf, value in saved:
            buf.copy_(value)
        model.train(was_training)
    return probe.summary()


def load_checkpoint_file(path: str) -> dict:
    if '://' not in path and not osp.isfile(path):
        raise ValueError(f'checkpoint {path} does not exist')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path,
                                                      map_location='cpu')
    except CheckpointError as e:  # refused or unreadable: says which file
        raise ValueError(str(e)) from None
    except Exception as e:  # pickle, zip, torch errors alike
        raise ValueError(f'{path} could not be read as a checkpoint '
                         f'({type(e).__name__}: {e})') from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} is not a checkpoint: it holds a '
                         f'{type(checkpoint).__name__}, not a dict')
    return checkpoint


def resolve_config(checkpoint_path: str, checkpoint: dict,
                   config: Optional[str] = None):
    """The config of a checkpoint: ``config`` if given, else the config
    dumped in the checkpoint's folder (its work dir), else the config text
    mmengine stores in ``meta['cfg']``. Returns ``(Config or path, name)``."""
    if config is not None:
        return config, osp.splitext(osp.basename(config))[0]
    dump = config_dump(osp.dirname(osp.abspath(checkpoint_path)))
    if dump is not None:
        return dump, osp.splitext(osp.basename(dump))[0]
    text = (checkpoint.get('meta') or {}).get('cfg')
    if isinstance(text, str) and text.strip():
        return Config.fromstring(text, '.py'), 'meta'
    raise ValueError(
        f'checkpoint {checkpoint_path} has no resolvable config: no --config '
        f'given, no config (*.py) in its folder '
        f'{osp.dirname(osp.abspath(checkpoint_path))}, and no meta["cfg"] in '
        'the checkpoint; pass --config CONFIG (the config it was trained '
        'with, plus --norm SCHEME if it was trained with --norm)')


def _state_dict(checkpoint: dict) -> dict:
    state = checkpoint.get('state_dict', checkpoint)
    return OrderedDict((re.sub(r'^module\.', '', k), v)
                       for k, v in state.items()
                       if isinstance(v, torch.Tensor))


def measure_checkpoint(checkpoint_path: str, config: Optional[str] = None,
                       norm=None, cfg_options: Optional[dict] = None,
                       num_batches: int = 4, split: Optional[str] = None,
                       mode: str = 'train', dead_threshold: float = 0.01,
                       near_threshold: float = -2.0,
                       echo: Callable[[str], None] = print
                       ) -> SingularityRun:
    """Build the model of a checkpoint's config with :mod:`mmbcn.apis`,
    load the weights and measure it on ``num_batches`` batches of the
    ``split`` dataloader (default: train for ``mode='train'``, val for
    ``'eval'``); loaded in the main process (``num_workers=0``)."""
    if mode not in MODES:
        raise ValueError(f'mode={mode!r} is not valid; choose from '
                         f'{", ".join(MODES)}')
    split = split or ('train' if mode == 'train' else 'val')
    if split not in ('train', 'val', 'test'):
        raise ValueError(f'split={split!r} is not valid; choose from '
                         'train, val, test')
    if num_batches < 1:
        raise ValueError(f'num_batches={num_batches} must be >= 1')
    checkpoint = load_checkpoint_file(checkpoint_path)
    source, name = resolve_config(checkpoint_path, checkpoint, config)
    run = SingularityRun(source=checkpoint_path)
    with tempfile.TemporaryDirectory(prefix='mmbcn_singularity_') as tmp:
        cfg = apis.load_config(source, norm=norm, cfg_options=cfg_options,
                               work_dir=tmp)
        cfg.load_from, cfg.resume = None, False
        cfg.log_level = 'WARNING'  # no config / hook listing of the runner
        _describe(run, cfg, name)
        loader_cfg = cfg.get(f'{split}_dataloader')
        if not loader_cfg:
            raise ValueError(f'the config {name} has no {split}_dataloader')
        loader_cfg.num_workers = 0
        loader_cfg.persistent_workers = False
        echo(f'{checkpoint_path}: building the model of {name} '
             f'(scheme {run.scheme or "as written"})')
        runner = apis.build_runner(cfg)
        model = unwrap_model(runner.model)
        state = _state_dict(checkpoint)
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        resized = [k for k in own if k in state and
                   own[k].shape != state[k].shape]
        if missing or unexpected or resized:
            raise ValueError(
                f'checkpoint {checkpoint_path} does not fit the model of '
                f'{name} (scheme {run.scheme or "as written"}): missing '
                f'{_few(missing)}; unexpected {_few(unexpected)}; other '
                f'shape {_few(resized)}; pass the --config (and --norm) it '
                'was trained with')
        model.load_state_dict(state)
        loader = runner.build_dataloader(loader_cfg)
        batches = _take(loader, num_batches)
        echo(f'measuring {len(batches)} {split} batches in {mode} mode')
        stats = measure_model(model, batches, mode, dead_threshold,
                              near_threshold, echo)
    step = int((checkpoint.get('meta') or {}).get('iter', 0) or 0)
    run.measurements = OrderedDict([(step, stats)])
    return run


def _take(loader, n: int) -> list:
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == n:
            break
    return batches


def _few(keys: Sequence[str], k: int = 4) -> str:
    if not keys:
        return 'none'
    more = f' (+{len(keys) - k} more)' if len(keys) > k else ''
    return ', '.join(keys[:k]) + more


# ---------------------------------------------------------------------------
# labels, tables, plots
# ---------------------------------------------------------------------------
def assign_labels(runs: Sequence[SingularityRun],
                  labels: Optional[Sequence[str]] = None) -> None:
    """Given labels, else the scheme, made unique per task with the run's
    folder or checkpoint name."""
    if labels:
        if len(labels) != len(runs):
            raise ValueError(
                f'--labels: {len(labels)} labels for {len(runs)} runs '
                f'({", ".join(r.source for r in runs)}); give one per run')
        for run, label in zip(runs, labels):
            run.label = label
        return
    for run in runs:
        run.label = run.scheme or _source_name(run)
    seen: Dict[tuple, int] = {}
    for run in runs:
        seen[(run.task, run.label)] = seen.get((run.task, run.label), 0) + 1
    for run in runs:
        if seen[(run.task, run.label)] > 1:
            run.label = f'{run.label} ({_source_name(run)})'


def _source_name(run: SingularityRun) -> str:
    path = run.source.rstrip('/')
    if osp.isfile(path):
        return f'{osp.basename(osp.dirname(osp.abspath(path)))}/' \
            f'{osp.basename(path)}'
    return osp.basename(path)


def layer_key(name: str) -> str:
    """A layer name comparable across schemes: the norm's own attribute
    (``bn1``, ``gn1``, ``bcn1``, ``affine1``...) becomes ``norm1``."""
    parts = name.split('.')
    match = re.fullmatch(r'[A-Za-z_]+(\d*)', parts[-1])
    if match:
        parts[-1] = f'norm{match.group(1)}'
    return '.'.join(parts)


def _num(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if abs(value) >= 1e3:
        return f'{value:.3g}'
    return f'{value:.{digits}f}'


def _nums(**digits) -> Dict[str, Callable[[dict], str]]:
    """Table formats: each named column through :func:`_num`."""
    return {c: (lambda row, c=c, d=d: _num(row[c], d))
            for c, d in digits.items()}


def summary_rows(runs: Sequence[SingularityRun]) -> List[dict]:
    rows = []
    for run in runs:
        agg = aggregate(run.final)
        rows.append(OrderedDict(
            run=run.label, task=run.task or MISSING,
            scheme=run.scheme or MISSING,
            iter=run.final_iter, layers=agg['layers'],
            channels=sum(s.channels for s in run.final),
            dead_fraction=agg['dead_fraction'],
            near_fraction=agg['near_fraction'],
            mean_distance=agg['mean_distance'], source=run.source))
    return rows


def to_markdown(runs: Sequence[SingularityRun], near_threshold: float = -2.0,
                dead_threshold: float = 0.01) -> str:
    """Model-level table, then one per-layer table per run (final
    measurement)."""
    headers = dict(dead_fraction='dead fraction',
                   near_fraction='near fraction',
                   mean_distance='mean distance',
                   min_distance='min distance')
    lines = ['# Elimination singularities', '',
             f'Final measurement per run. dead: active on fewer than '
             f'{dead_threshold:g} of positions; near: standardized mean '
             f'd < {near_threshold:g} (mmbcn/models/diagnostics.py). '
             'Fractions are channel-weighted over layers.', '',
             markdown_table(
                 summary_rows(runs),
                 ('run', 'task', 'scheme', 'iter', 'layers', 'channels',
                  'dead_fraction', 'near_fraction', 'mean_distance',
                  'source'), headers=headers,
                 formats=_nums(dead_fraction=3, near_fraction=3,
                               mean_distance=2))]
    for run in runs:
        lines += ['', f'## {run.label} ({run.task or "?"}, iter '
                  f'{run.final_iter})', '',
                  markdown_table(
                      [s.as_dict() for s in run.final],
                      ('layer', 'channels', 'dead_fraction', 'near_fraction',
                       'mean_distance', 'min_distance'), headers=headers,
                      formats=_nums(dead_fraction=3, near_fraction=3,
                                    mean_distance=2, min_distance=2))]
    return '\n'.join(lines) + '\n'


def write_layer_csv(runs: Sequence[SingularityRun], path: str) -> None:
    """One row per run and layer at the final measurement."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['run', 'task', 'scheme', *FIELDS])
        for run in runs:
            for s in run.final:
                writer.writerow([run.label, run.task, run.scheme,
                                 run.final_iter, s.layer, s.channels,
                                 s.dead_fraction, s.near_fraction,
                                 s.mean_distance, s.min_distance])


def write_curve_csv(runs: Sequence[SingularityRun], path: str) -> None:
    """Model-level numbers per run and measured iteration."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['run', 'task', 'scheme', 'iter', 'dead_fraction',
                         'near_fraction', 'mean_distance'])
        for run in runs:
            for step, agg in run.curve():
                writer.writerow([run.label, run.task, run.scheme, step,
                                 agg['dead_fraction'], agg['near_fraction'],
                                 agg['mean_distance']])


def plot_runs(runs: Sequence[SingularityRun], out_dir: str) -> List[str]:
    """Per task: ``singularity_<task>.png`` (model-level dead / near
    fraction over iterations, one line per run) and
    ``singularity_layers_<task>.png`` (final per-layer fractions, layers
    aligned across schemes by :func:`layer_key`). Returns the paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    tasks = list(OrderedDict.fromkeys(r.task or 'model' for r in runs))
    for task in tasks:
        members = [r for r in runs if (r.task or 'model') == task]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for i, run in enumerate(members):
            steps, aggs = zip(*run.curve())
            for ax, key in zip(axes, ('dead_fraction', 'near_fraction')):
                ax.plot(steps, [a[key] for a in aggs], 'o-', ms=3,
                        color=f'C{i % 10}', label=run.label)
        for ax, what in zip(axes, ('dead', 'near-elimination')):
            ax.set(title=f'{task}: {what} channels (model level)',
                   xlabel='iteration', ylabel='fraction of channels')
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = osp.join(out_dir, f'singularity_{task}.png')
        fig.savefig(path, dpi=110, bbox_inches='tight')
        plt.close(fig)
        written.append(path)

        keys = list(OrderedDict.fromkeys(
            layer_key(s.layer)
            for run in sorted(members, key=lambda r: -len(r.final))
            for s in run.final))
        fig, axes = plt.subplots(2, 1, sharex=True,
                                 figsize=(max(8, 0.28 * len(keys)), 7.5))
        for i, run in enumerate(members):
            by_key = {layer_key(s.layer): s for s in run.final}
            xs = [j for j, k in enumerate(keys) if k in by_key]
            for ax, attr in zip(axes, ('dead_fraction', 'near_fraction')):
                ax.plot(xs, [getattr(by_key[keys[j]], attr) for j in xs],
                        'o-', ms=4, lw=0.8, alpha=0.85, color=f'C{i % 10}',
                        label=run.label)
        for ax, what in zip(axes, ('dead', 'near-elimination')):
            ax.set(ylabel=f'{what} fraction')
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        axes[0].set_title(f'{task}: per-layer fractions at the final '
                          'measurement')
        axes[0].legend(fontsize=8)
        axes[1].set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
        fig.tight_layout()
        path = osp.join(out_dir, f'singularity_layers_{task}.png')
        fig.savefig(path, dpi=110, bbox_inches='tight')
        plt.close(fig)
        written.append(path)
    return written


def write_report(runs: Sequence[SingularityRun], out_dir: str,
                 plots: bool = True, near_threshold: float = -2.0,
                 dead_threshold: float = 0.01) -> List[str]:
    """``singularity.md``, ``singularity_layers.csv``,
    ``singularity_curves.csv`` and the plots in ``out_dir``; returns the
    paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [osp.join(out_dir, 'singularity.md'),
             osp.join(out_dir, 'singularity_layers.csv'),
             osp.join(out_dir, 'singularity_curves.csv')]
    with open(paths[0], 'w') as f:
        f.write(to_markdown(runs, near_threshold, dead_threshold))
    write_layer_csv(runs, paths[1])
    write_curve_csv(runs, paths[2])
    if plots:
        paths += plot_runs(runs, out_dir)
    return paths
