"""Read finished runs from their mmengine work dirs and tabulate them.

A run's work dir holds the config the runner dumped (``<name>.py``), one
folder per launch (``<timestamp>/``) with the text log and
``vis_data/scalars.json`` (one JSON record per logged step: training records
carry ``loss`` and ``time``, validation records the metrics). Resumed runs
have several launch folders; their records are read in order.
"""
import glob
import json
import math
import os.path as osp
import re
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

# metric key in the logs -> column name
DET_METRICS = {'coco/bbox_mAP': 'bbox mAP', 'coco/bbox_mAP_50': 'bbox AP50',
               'coco/bbox_mAP_75': 'bbox AP75', 'coco/segm_mAP': 'segm mAP',
               'coco/segm_mAP_50': 'segm AP50',
               'coco/segm_mAP_75': 'segm AP75'}
SEG_METRICS = {'mIoU': 'mIoU', 'mAcc': 'mAcc', 'aAcc': 'aAcc'}
CLS_METRICS = {'cls/top1': 'top-1 acc'}
#: the metric a task's validation curve and comparisons use
MAIN_METRIC = {'det': 'bbox mAP', 'seg': 'mIoU', 'cls': 'top-1 acc'}
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
_SCHEME = re.compile(r"^norm_scheme\s*=\s*(?:dict\(\s*name\s*=\s*)?"
                     r"['\"]([\w-]+)['\"]", re.M)


class RunReadError(ValueError):
    """A work dir whose files cannot be read; the message names the file."""


def _number(value) -> Optional[float]:
    """``value`` as a float if it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class RunResult:
    work_dir: str
    config: str = ''
    task: str = ''              # 'det', 'seg' or 'cls' (pretraining)
    model: str = ''
    backbone: str = ''
    scheme: str = ''
    imgs_per_gpu: Optional[int] = None
    gpus: Optional[int] = None
    max_iters: Optional[int] = None
    schedule: str = ''
    seed: Optional[int] = None
    last_iter: int = 0
    metrics: Dict[str, float] = field(default_factory=dict)
    sec_per_iter: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    train_curve: List[tuple] = field(default_factory=list)  # (iter, loss)
    val_curve: List[tuple] = field(default_factory=list)    # (iter, metric)
    non_finite: bool = False  # a logged loss or metric is inf / NaN
    launch_schemes: List[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return bool(self.metrics) and (self.max_iters is None or
                                       self.last_iter >= self.max_iters)

    @property
    def status(self) -> str:
        """'finished', 'stopped at N' (killed or crashed at iteration N),
        'non-finite' (a loss or metric became inf / NaN) or 'mixed (...)'
        (launches of different norm schemes wrote into the work dir)."""
        schemes = sorted(set(self.launch_schemes))
        if len(schemes) > 1:
            return f'mixed ({", ".join(schemes)})'
        if self.non_finite:
            return 'non-finite'
        if self.finished:
            return 'finished'
        return f'stopped at {self.last_iter}'


def _launch_dirs(work_dir: str) -> List[str]:
    dirs = [d for d in glob.glob(osp.join(work_dir, '*'))
            if osp.isdir(d) and _TIMESTAMP.match(osp.basename(d))]
    return sorted(dirs)


def config_dump(work_dir: str) -> Optional[str]:
    """The config the runner dumped into ``work_dir`` (the newest
    ``*.py``), or None."""
    dumps = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    return dumps[-1] if dumps else None


def _read_config(work_dir: str, result: RunResult) -> None:
    from mmengine.config import Config
    dump = config_dump(work_dir)
    if dump is None:
        return
    try:  # (a config dump is Python: reading it runs it)
        cfg = Config.fromfile(dump)
        describe_config(cfg, result)
    except Exception as err:  # any error of the dumped file
        first = (str(err).strip().splitlines() or [''])[0][:120]
        raise RunReadError(f'{dump}: not a readable config dump '
                           f'({type(err).__name__}: {first})') from None
    result.config = osp.splitext(osp.basename(dump))[0]


def _launch_scheme(launch_dir: str) -> Optional[str]:
    """The norm scheme in a launch's ``vis_data/config.py`` (by its text,
    without running it), or None."""
    path = osp.join(launch_dir, 'vis_data', 'config.py')
    try:
        with open(path, errors='replace') as f:
            match = _SCHEME.search(f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def _records(scalars: str):
    """The JSON records of a ``scalars.json`` (a line cut off by a crash is
    skipped); RunReadError if the file is not text."""
    try:
        with open(scalars, 'rb') as f:
            text = f.read().decode('utf-8')
    except UnicodeDecodeError:
        raise RunReadError(f'{scalars}: not a text file of JSON records'
                           ) from None
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def describe_config(cfg, result: RunResult) -> RunResult:
    """Fill task, model, backbone, scheme, batch, schedule and seed of
    ``result`` from a config."""
    scope = cfg.get('default_scope', '')
    result.task = {'mmdet': 'det', 'mmseg': 'seg'}.get(scope, scope)
    model = cfg.get('model', {})
    if model.get('type') == 'BackboneClassifier':  # in either scope
        result.task = 'cls'
    result.model = model.get('type', '')
    if result.model == 'EncoderDecoder':
        result.model = model.get('decode_head', {}).get('type', result.model)
    backbone = model.get('backbone', {})
    depth = backbone.get('depth')
    result.backbone = f"{backbone.get('type', '')}{depth or ''}"
    scheme = cfg.get('norm_scheme')
    if isinstance(scheme, dict):
        scheme = scheme.get('name', '')
    result.scheme = scheme or ''
    result.imgs_per_gpu = cfg.get('train_dataloader', {}).get('batch_size')
    train_cfg = cfg.get('train_cfg', {})
    result.max_iters = train_cfg.get('max_iters')
    if result.max_iters:
        result.schedule = f'{result.max_iters}i'
    elif train_cfg.get('max_epochs'):
        result.schedule = f"{train_cfg['max_epochs']}e"
    result.seed = cfg.get('randomness', {}).get('seed')
    return result


def _read_world_size(launch_dir: str) -> Optional[int]:
    for log in glob.glob(osp.join(launch_dir, '*.log')):
        with open(log, errors='replace') as f:
            head = f.read(20000)
        match = re.search(r'GPU number: (\d+)', head)  # the world size
        if match:
            return int(match.group(1))
    return None


def read_run(work_dir: str, warmup_iters: int = 5) -> RunResult:
    """Collect config facts, metrics, timings and the status of one work
    dir; RunReadError naming the file if one cannot be read."""
    result = RunResult(work_dir=work_dir)
    _read_config(work_dir, result)
    times, memory = [], []
    metric_keys = {**DET_METRICS, **SEG_METRICS, **CLS_METRICS}
    main_metric = MAIN_METRIC.get(result.task)
    for launch in _launch_dirs(work_dir):
        scheme = _launch_scheme(launch)
        if scheme:
            result.launch_schemes.append(scheme)
        scalars = osp.join(launch, 'vis_data', 'scalars.json')
        if result.gpus is None:
            result.gpus = _read_world_size(launch)
        if not osp.isfile(scalars):
            continue
        for record in _records(scalars):
            step = _number(record.get('step', record.get('iter', 0))) or 0
            loss = _number(record.get('loss'))
            if loss is not None:
                result.last_iter = max(result.last_iter, int(
                    _number(record.get('iter')) or step))
                result.non_finite |= not math.isfinite(loss)
                result.train_curve.append((step, loss))
                time = _number(record.get('time'))
                if time is not None and step > warmup_iters:
                    times.append(time)
                for key in ('memory', 'peak_mem_mb'):
                    if _number(record.get(key)) is not None:
                        memory.append(record[key])
            found = {metric_keys[k]: _number(v) for k, v in record.items()
                     if k in metric_keys and _number(v) is not None}
            if found:
                result.non_finite |= not all(map(math.isfinite,
                                                 found.values()))
                # validation records of iteration-based runs carry the
                # epoch as their step: place them after the last
                # training iteration logged
                if 'loss' not in record and result.max_iters:
                    step = result.last_iter
                result.metrics = found
                if main_metric in found:
                    result.val_curve.append((step, found[main_metric]))
    if times:
        result.sec_per_iter = statistics.median(times)
    if memory:
        result.peak_memory_mb = max(memory)
    return result


def find_work_dirs(paths: Sequence[str]) -> List[str]:
    """Work dirs at or below ``paths`` (a dir with a launch folder)."""
    found = []
    for path in paths:
        if not osp.isdir(path):
            raise FileNotFoundError(f'{path} is not a directory')
        if _launch_dirs(path):
            found.append(path)
            continue
        for sub in sorted(glob.glob(osp.join(path, '**', ''),
                                    recursive=True)):
            sub = sub.rstrip('/')
            if sub != path and _launch_dirs(sub):
                found.append(sub)
    return found
