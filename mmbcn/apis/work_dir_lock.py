"""One training run per work dir.

Two runs started with the same ``--work-dir`` would both finish with exit
code 0, write into one log folder (mmengine names it by the start second),
interleave ``singularity.jsonl`` and overwrite each other's checkpoints.
:func:`work_dir_lock` takes an exclusive ``flock`` on
``<work_dir>/.train.lock`` for the length of the run; the lock file names
the holder (pid, host, start time, config). The kernel drops the lock when
the process ends however it ends, so a lock file left by a killed run is
stale by construction: the next run takes it over. (``flock`` on network
file systems may be local to one host.)
"""
import contextlib
import fcntl
import json
import os
import os.path as osp
import socket
import time

LOCK_NAME = '.train.lock'


class WorkDirLockedError(RuntimeError):
    """Another process trains in this work dir."""


def launcher_rank() -> int:
    """This process's global rank as the launchers set it (0 if none)."""
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(key, '').isdigit():
            return int(os.environ[key])
    return 0


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.load(f)
        return (f"pid {info['pid']} on {info['host']}, started "
                f"{info['started']}, config {info['config']}")
    except (OSError, ValueError, KeyError, TypeError):
        return 'a process that has not written its details yet'


@contextlib.contextmanager
def work_dir_lock(work_dir: str, config: str = ''):
    """Hold the training lock of ``work_dir`` (created if needed) while the
    block runs; :class:`WorkDirLockedError` if another process holds it.
    Only rank 0 of a distributed run locks (all ranks share the work
    dir)."""
    if launcher_rank() != 0:
        yield None
        return
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirLockedError(
                f'work dir {work_dir} is in use by another training run '
                f'({_holder(path)}): use another --work-dir, or wait for '
                'that run to end') from None
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    started=time.strftime('%Y-%m-%d %H:%M:%S'),
                    config=str(config))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


__all__ = ['LOCK_NAME', 'WorkDirLockedError', 'launcher_rank',
           'work_dir_lock']
