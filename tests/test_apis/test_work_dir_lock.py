"""One training run per work dir: the lock, its holder and stale locks."""
import os
import signal
import subprocess
import sys

import pytest

from mmbcn.apis.work_dir_lock import (LOCK_NAME, WorkDirLockedError,
                                      work_dir_lock)

HOLDER = r'''
import sys, time
from mmbcn.apis.work_dir_lock import work_dir_lock
with work_dir_lock(sys.argv[1], 'holder.py'):
    print('locked', flush=True)
    time.sleep(600)
'''


def test_a_held_lock_refuses_a_second_run_naming_the_holder(tmp_path):
    with work_dir_lock(str(tmp_path), 'first.py'):
        with pytest.raises(WorkDirLockedError) as err:
            with work_dir_lock(str(tmp_path), 'second.py'):
                pass
    message = str(err.value)
    assert f'pid {os.getpid()}' in message and 'config first.py' in message
    with work_dir_lock(str(tmp_path), 'third.py'):  # released on exit
        pass


def test_lock_of_a_killed_run_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirLockedError, match=f'pid {proc.pid}'):
            with work_dir_lock(str(tmp_path)):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # left behind, but not held
    with work_dir_lock(str(tmp_path), 'next.py'):
        assert 'next.py' in (tmp_path / LOCK_NAME).read_text()


def test_only_rank_0_locks(tmp_path, monkeypatch):
    with work_dir_lock(str(tmp_path)):
        monkeypatch.setenv('RANK', '1')
        with work_dir_lock(str(tmp_path)) as held:
            assert held is None
