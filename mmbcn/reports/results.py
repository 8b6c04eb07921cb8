"""Read finished runs from their mmengine work dirs and tabulate them.

A run's work dir holds the config the runner dumped (``<name>.py``), one
folder per launch (``<timestamp>/``) with the text log and
``vis_data/scalars.json`` (one JSON record per logged step: training records
carry ``loss`` and ``time``, validation records the metrics). Resumed runs
have several launch folders; their records are read in order.
"""
import glob
import json
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
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


@dataclass
class RunResult:
    work_dir: str
    config: str = ''
    task: str = ''              # 'det' or 'seg'
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

    @property
    def finished(self) -> bool:
        return bool(self.metrics) and (self.max_iters is None or
                                       self.last_iter >= self.max_iters)


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
    describe_config(Config.fromfile(dump), result)
    result.config = osp.splitext(osp.basename(dump))[0]


def describe_config(cfg, result: RunResult) -> RunResult:
    """Fill task, model, backbone, scheme, batch, schedule and seed of
    ``result`` from a config."""
    scope = cfg.get('default_scope', '')
    result.task = {'mmdet': 'det', 'mmseg': 'seg'}.get(scope, scope)
    model = cfg.get('model', {})
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
    """Collect config facts, metrics and timings of one work dir."""
    result = RunResult(work_dir=work_dir)
    _read_config(work_dir, result)
    times, memory = [], []
    metric_keys = {**DET_METRICS, **SEG_METRICS}
    main_metric = None
    for launch in _launch_dirs(work_dir):
        scalars = osp.join(launch, 'vis_data', 'scalars.json')
        if result.gpus is None:
            result.gpus = _read_world_size(launch)
        if not osp.isfile(scalars):
            continue
        with open(scalars) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off by a crash
                step = record.get('step', record.get('iter', 0))
                if 'loss' in record:
                    result.last_iter = max(result.last_iter,
                                           record.get('iter', step))
                    result.train_curve.append((step, record['loss']))
                    if 'time' in record and step > warmup_iters:
                        times.append(record['time'])
                    for key in ('memory', 'peak_mem_mb'):
                        if key in record:
                            memory.append(record[key])
                found = {metric_keys[k]: float(v) for k, v in record.items()
                         if k in metric_keys}
                if found:
                    # validation records of iteration-based runs carry the
                    # epoch as their step: place them after the last
                    # training iteration logged
                    if 'loss' not in record and result.max_iters:
                        step = result.last_iter
                    result.metrics = found
                    main_metric = main_metric or next(iter(found))
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
