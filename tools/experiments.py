"""Run a matrix of experiments: config x norm scheme x seed.

Every run is one ``tools/train.py`` process (or ``tools/dist_train.sh`` with
several processes) with its own work dir, so runs cannot leak state into
each other; finished runs are skipped, so an interrupted matrix continues
where it stopped. Results are read back with :mod:`mmbcn.reports.results`.

This helper of ``tools/run_matrix.py`` and ``tools/demo.py`` lives in
``tools/``, not in the library: it starts this repository's tools.
"""
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from mmbcn.reports.collect import scheme_rows, summarize
from mmbcn.reports.results import RunResult, read_run
from mmbcn.schemes import SCHEMES, get_scheme

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass
class PlannedRun:
    config: str
    scheme: Optional[str]
    seed: Optional[int]
    work_dir: str
    cfg_options: Sequence[str] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return osp.basename(self.work_dir)


def plan_runs(configs: Sequence[str], schemes: Sequence[str] = (),
              seeds: Sequence[int] = (),
              work_root: str = 'work_dirs/matrix') -> List[PlannedRun]:
    """Every (config, scheme, seed); no schemes: each config's own scheme."""
    for config in configs:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config} does not exist')
    for scheme in schemes:
        get_scheme(scheme)  # unknown names fail before anything runs
    runs = []
    for config in configs:
        stem = osp.splitext(osp.basename(config))[0]
        for scheme in schemes or [None]:
            for seed in seeds or [None]:
                name = stem
                if scheme is not None:
                    name += f'_{scheme}'
                if seed is not None:
                    name += f'_seed{seed}'
                runs.append(PlannedRun(config, scheme, seed,
                                       osp.join(work_root, name)))
    return runs


def train_command(run: PlannedRun, gpus: int = 1,
                  extra_args: Sequence[str] = ()) -> List[str]:
    if gpus > 1:
        cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
               run.config, str(gpus)]
    else:
        cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
               run.config]
    cmd += ['--work-dir', run.work_dir]
    if run.scheme is not None:
        cmd += ['--norm', run.scheme]
    options = list(run.cfg_options)
    if run.seed is not None:
        options.insert(0, f'randomness.seed={run.seed}')
    if options:
        cmd += ['--cfg-options'] + options
    return cmd + list(extra_args)


def is_finished(run: PlannedRun) -> bool:
    return osp.isdir(run.work_dir) and read_run(run.work_dir).finished


def run_matrix(runs: Sequence[PlannedRun], gpus: int = 1,
               extra_args: Sequence[str] = (), skip_finished: bool = True,
               echo: Callable[[str], None] = print,
               jobs: int = 1) -> List[RunResult]:
    """Train every run not finished yet; returns every run's results.

    Each run's output goes to ``<work_dir>/train_stdout.log``; a failing run
    raises ``RuntimeError`` naming its log (after the runs in flight end).
    ``jobs`` > 1 trains that many runs at once, each with
    ``OMP_NUM_THREADS`` = the CPU count / ``jobs`` (CPU training).
    """
    total = len(runs)
    env = None
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))

    def train(numbered):
        i, run = numbered
        if skip_finished and is_finished(run):
            echo(f'[{i}/{total}] {run.name}: finished before, skipped')
            return
        os.makedirs(run.work_dir, exist_ok=True)
        log = osp.join(run.work_dir, 'train_stdout.log')
        cmd = train_command(run, gpus, extra_args)
        echo(f'[{i}/{total}] {run.name}: training ... (log: {log})')
        start = time.time()
        with open(log, 'w') as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                  cwd=os.getcwd(), env=env)
        if proc.returncode != 0:
            with open(log, errors='replace') as f:
                tail = ''.join(f.readlines()[-15:])
            raise RuntimeError(
                f'run {run.name} failed (exit {proc.returncode}); command: '
                f'{" ".join(cmd)}\nlast lines of {log}:\n{tail}')
        result = read_run(run.work_dir)
        shown = ', '.join(f'{k} {v:.3f}' for k, v in result.metrics.items()
                          if k in ('bbox mAP', 'segm mAP', 'mIoU',
                                   'top-1 acc'))
        echo(f'[{i}/{total}] {run.name}: done in {time.time() - start:.0f} s'
             f' ({shown})')

    numbered = list(enumerate(runs, 1))
    if jobs <= 1:
        for item in numbered:
            train(item)
    else:
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            for future in [pool.submit(train, item) for item in numbered]:
                future.result()
        finally:  # after a failure, start no further run
            pool.shutdown(wait=True, cancel_futures=True)
    return [read_run(run.work_dir) for run in runs]


# ---------------------------------------------------------------------------
# The demo: small Mask R-CNN and DeepLabV3 on the built-in shapes data
# ---------------------------------------------------------------------------
DEMO_SCHEMES = ('bn', 'gn', 'gn-ws', 'bcn-ws')
# `make compare`: the demo plus BCN without WS and the related schemes
# (FRN, BatchRenorm, MABN and Cross-Iteration BN among them)
# (syncbn is left out: on one process it is plain BN)
COMPARE_SCHEMES = DEMO_SCHEMES + ('bcn', 'sws', 'evonorm-b0', 'evonorm-s0',
                                  'frn', 'brn', 'mabn', 'cbn')


#: ... and the small Swin Mask R-CNN with LayerNorm and with PRepBN
#: (hand-written configs, labels 'ln' / 'prepbn': not schemes of the table)
COMPARE_SWIN_CONFIGS = (
    'configs/swin/mask-rcnn_swin-tiny_fpn_1xb2-300i_shapes.py',
    'configs/swin/mask-rcnn_swin-tiny_fpn_prepbn_1xb2-300i_shapes.py')


def shapes_configs(scheme: str, config_dir: str = 'configs/shapes'
                   ) -> List[str]:
    """The small detection and segmentation configs of ``scheme``."""
    import glob

    det_tag = SCHEMES[scheme].det_tag
    configs = []
    for pattern in (f'mask-rcnn_*_{det_tag}_1xb2-*_shapes.py',
                    f'deeplabv3_*_{scheme}_1xb2-*_shapes.py'):
        found = sorted(glob.glob(osp.join(config_dir, pattern)))
        if len(found) != 1:
            raise FileNotFoundError(
                f'expected one small config for scheme {scheme!r} matching '
                f'{osp.join(config_dir, pattern)}, found {len(found)}')
        configs += found
    return configs


def demo_rows(results: Sequence[RunResult]) -> List[dict]:
    """One row per scheme: detection and segmentation results side by side,
    each the mean ± std over the scheme's seeds (with n)."""
    return scheme_rows(summarize(results))


DEMO_COLUMNS = ('scheme', 'bbox mAP', 'segm mAP', 'mIoU', 'det sec/iter',
                'seg sec/iter', 'n')
