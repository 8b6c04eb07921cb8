"""A checkpoint interrupted while being written never replaces a good one."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.fileio import get_file_backend

from mmbcn.compat import AtomicLocalBackend
from repo import TESTS

WRITER = r'''
import sys
import mmbcn  # noqa: F401  (registers the all-or-nothing local backend)
from mmengine.fileio import get_file_backend
path = sys.argv[1]
data = b'x' * (300 * 2 ** 20)
print('writing', flush=True)
for _ in range(20):
    get_file_backend(path).put(data, path)
'''


def test_local_backend_is_atomic():
    assert isinstance(get_file_backend('/some/file.pth'), AtomicLocalBackend)


def test_killed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / 'iter_4.pth'
    target.write_bytes(b'good checkpoint')
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(target)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'writing'
    time.sleep(0.3)  # mid-way through the writes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    content = target.read_bytes()
    # either the old file or a complete new one, never a truncated one
    assert content == b'good checkpoint' or len(content) == 300 * 2 ** 20


def test_text_put_replaces_whole_file(tmp_path):
    backend = get_file_backend(str(tmp_path))
    path = tmp_path / 'last_checkpoint'
    backend.put_text('a' * 100, path)
    backend.put_text('b', path)
    assert path.read_text() == 'b'
    assert os.listdir(tmp_path) == ['last_checkpoint']  # no temp left


TRAINER = r'''
import sys
import torch
from mmengine.hooks import Hook
sys.path.insert(0, sys.argv[2])
from tiny_runner import make_runner


class Ballast(Hook):
    """Makes the checkpoint of iteration 4 large: its write takes a while."""

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == 4:
            checkpoint['ballast'] = torch.ones(64 * 2 ** 20)  # 256 MiB


runner = make_runner(sys.argv[1], 6, max_keep_ckpts=int(sys.argv[3]))
runner.register_hook(Ballast())
runner.train()
'''


@pytest.mark.parametrize('max_keep_ckpts', [-1, 1])
def test_run_killed_while_saving_resumes_from_last_complete(tmp_path,
                                                            max_keep_ckpts):
    """SIGKILL while iter_4.pth is being written: last_checkpoint still
    names the complete iter_2.pth, which is still there even when only one
    checkpoint is kept, and --resume (resume=True) continues from it."""
    from mmengine.runner import find_latest_checkpoint

    from tiny_runner import make_runner
    work_dir = tmp_path / 'run'
    proc = subprocess.Popen(
        [sys.executable, '-c', TRAINER, str(work_dir),
         TESTS, str(max_keep_ckpts)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(work_dir.glob('.iter_4.pth.*.tmp')):
            assert proc.poll() is None, 'the run ended before iteration 4'
            assert time.time() < deadline
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (work_dir / 'iter_2.pth').is_file()
    if (work_dir / 'iter_4.pth').exists():  # the write won the race
        assert 'ballast' in torch.load(work_dir / 'iter_4.pth',
                                       weights_only=True)
    else:
        assert find_latest_checkpoint(str(work_dir)) == str(
            work_dir / 'iter_2.pth')
    start = 4 if (work_dir / 'iter_4.pth').exists() else 2

    runner = make_runner(work_dir, 6, resume=True,
                         max_keep_ckpts=max_keep_ckpts)
    runner.train()
    assert runner.iter == 6
    log = sorted(work_dir.glob('*/*.log'))[-1].read_text()
    assert f'resumed epoch: 0, iter: {start}' in log
    if max_keep_ckpts == 1:  # the old one goes once the new one is written
        assert sorted(p.name for p in work_dir.glob('*.pth')) == [
            'iter_6.pth']


def test_ctrl_c_while_saving_is_an_interrupt_and_keeps_the_checkpoint(
        tmp_path, monkeypatch):
    """A KeyboardInterrupt while the config is formatted for the
    checkpoint's meta stays a KeyboardInterrupt (mmengine's pretty_text
    would turn it into 'SyntaxError: Failed to format the config file'),
    and the kept checkpoint is still there."""
    import mmengine.config.config as mmengine_config
    from mmengine.config import Config
    from mmengine.hooks import Hook

    from tiny_runner import make_runner
    work_dir = tmp_path / 'run'
    make_runner(work_dir, 2, max_keep_ckpts=1).train()
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    class CtrlCWhenSaving(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            if runner.iter + 1 == 4:  # before CheckpointHook (VERY_LOW)
                monkeypatch.setattr(mmengine_config, 'FormatCode',
                                    interrupted)
    runner = make_runner(work_dir, 4, resume=True, max_keep_ckpts=1,
                         cfg=Config(dict(note='x')),
                         custom_hooks=[CtrlCWhenSaving()])
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert calls
    assert (work_dir / 'iter_2.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text() == str(
        work_dir / 'iter_2.pth')


def test_checkpoint_permissions_follow_the_umask(tmp_path):
    """All-or-nothing writes keep the permissions of a plain open()."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / 'iter_2.pth'
    get_file_backend(str(path)).put(b'data', path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
