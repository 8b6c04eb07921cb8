"""A 2-process run killed with SIGKILL and resumed with --resume ends
exactly where an uninterrupted run ends: weights, optimizer and scheduler
state, every BCN layer's estimates, counters and update rates, bit for bit
(real tools/dist_train.sh runs of the shapes Mask R-CNN with BCN + WS, CPU
processes with gloo, ~35 s on 2 cores)."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmbcn.datasets import generate_shapes
from test_tools import (DET_CONFIG, REPO, TIMEOUT, cli_options, data_options,
                        free_port, load_checkpoint, run, tool_env)

pytestmark = pytest.mark.skipif(not osp.isdir('/proc/self/task'),
                                reason='walks the process tree in /proc')

MAX_ITERS = 8
RATE = 0.05
# the shapes config with the update-rate hook (its warm-up spans the kill)
CONFIG = f"""_base_ = {DET_CONFIG!r}
custom_hooks = [dict(type='BCNUpdateRateHook', rate={RATE}, warmup_iters=6,
                     warmup_start=0.5)]
"""


def options(config: str, data_root: str) -> list:
    """Tiny, deterministic: 64 px images, 8 iterations, a checkpoint and a
    validation (1 image) every 2 iterations, data loaded in the process."""
    opts = data_options(config, data_root, max_iters=MAX_ITERS)
    opts.update({
        'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
        'train_dataloader.dataset.pipeline.2.scale': '(64,64)',
        'randomness.seed': 0,
        'randomness.deterministic': True,
    })
    return cli_options(opts)


def dist_train(config, work_dir, data_root, *extra) -> list:
    return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, 2,
            '--work-dir', work_dir, *extra, *options(config, data_root)]


def job_env() -> dict:
    return dict(PYTHON=sys.executable, CUDA_VISIBLE_DEVICES='',
                PORT=str(free_port()))


def descendants(pid: int) -> list:
    """Every process below ``pid`` (torchrun starts its workers in their own
    sessions, so killing the launcher's process group misses them)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(')', 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, pp in parents.items() if pp in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def kill_job(proc: subprocess.Popen) -> list:
    """SIGKILL every process group of the job, the workers' first; returns
    the pids of the job."""
    pids = descendants(proc.pid)
    groups = []
    for pid in pids:
        try:
            groups.append(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in dict.fromkeys(groups[::-1] + [proc.pid]):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    return pids


def state(path) -> dict:
    checkpoint = load_checkpoint(path)
    return dict(meta_iter=checkpoint['meta']['iter'],
                state_dict=checkpoint['state_dict'],
                optimizer=checkpoint['optimizer'],
                param_schedulers=checkpoint['param_schedulers'])


def assert_same(a, b, where=''):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}.{i}')
    elif torch.is_tensor(a):
        equal = torch.equal(a, b)
        assert equal, f'{where} differs: max abs difference ' \
            f'{(a.double() - b.double()).abs().max().item():.3g}'
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, num_train=8, num_val=1, img_size=64,
                    progress=False)
    return str(root)


def test_sigkill_and_resume_equals_uninterrupted_run(data_root, tmp_path):
    config = tmp_path / 'bcn_ws_rate.py'
    config.write_text(CONFIG)
    config = str(config)
    # the reference: one uninterrupted run
    run(dist_train(config, tmp_path / 'full', data_root), tmp_path,
        **job_env())
    final = f'iter_{MAX_ITERS}.pth'

    # the same run, killed (every process, SIGKILL) after its first
    # checkpoint, while it trains on
    work_dir = tmp_path / 'killed'
    command = dist_train(config, work_dir, data_root)
    proc = subprocess.Popen(
        [str(c) for c in command], cwd=tmp_path, env=tool_env(**job_env()),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.time() + TIMEOUT
    pids = []
    try:
        while not (work_dir / 'last_checkpoint').exists():
            assert proc.poll() is None, 'the run ended before a checkpoint'
            assert time.time() < deadline, 'no checkpoint written in time'
            time.sleep(0.05)
        assert proc.poll() is None
    finally:
        pids = kill_job(proc)
    assert len(pids) >= 3  # torchrun and the two training processes
    while any(alive(pid) for pid in pids):  # SIGKILL is delivered async
        assert time.time() < deadline, 'processes survived SIGKILL'
        time.sleep(0.05)
    assert not (work_dir / final).exists(), 'killed too late'
    # --resume takes the checkpoint last_checkpoint names: a complete one
    start = load_checkpoint((work_dir / 'last_checkpoint').read_text(
    ).strip())['meta']['iter']
    assert 0 < start < MAX_ITERS

    _, output = run(dist_train(config, work_dir, data_root, '--resume'),
                    tmp_path, **job_env())
    assert f'resumed epoch: 0, iter: {start}' in output
    assert 'RNGStateHook' not in output  # the generators were restored

    full, resumed = state(tmp_path / 'full' / final), state(work_dir / final)
    assert resumed['meta_iter'] == MAX_ITERS
    # every BCN layer's buffers are compared: estimates, counters, rates
    layers = {k.rsplit('.', 1)[0] for k in full['state_dict']
              if k.endswith('.update_rate')}
    assert len(layers) == 32  # backbone, FPN, RoI box and mask heads
    for layer in layers:
        assert int(full['state_dict'][f'{layer}.num_batches_tracked']) \
            == MAX_ITERS
        assert float(full['state_dict'][f'{layer}.update_rate']) == \
            pytest.approx(RATE)
    assert_same(resumed, full)
