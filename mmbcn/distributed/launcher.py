"""Workers of a torchrun launch end when their launcher ends.

torchrun (``torch.distributed.run``, what ``tools/dist_train.sh`` and
``tools/dist_test.sh`` start) runs every worker in a session of its own, so
a signal to the launcher's process group (Ctrl-C in some shells, ``kill --
-PGID``, a job scheduler killing the job's group) does not reach the
workers; after ``kill -9`` of the launcher they train on, orphaned, holding
the GPUs and writing into the work dir. :func:`exit_with_launcher` starts a
watcher thread in the worker that ends the worker (and its data-loading
processes, which share its process group) once its parent, the launcher's
agent, is gone.
"""
import os
import signal
import sys
import threading
import time
from typing import Optional

_started: Optional[threading.Thread] = None


def launched_by_torchrun() -> bool:
    return 'TORCHELASTIC_RUN_ID' in os.environ


def _watch(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() == parent:
            continue
        sys.stderr.write(
            f'the launcher of this worker (pid {parent}) is gone: stopping '
            f'worker {os.getpid()}\n')
        sys.stderr.flush()
        if os.getpgrp() == os.getpid():  # its own group: loaders too
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def exit_with_launcher(interval: float = 1.0) -> Optional[threading.Thread]:
    """In a torchrun worker (``TORCHELASTIC_RUN_ID`` set), start (once) a
    daemon thread that SIGKILLs this worker within ``interval`` seconds of
    its parent process ending. Elsewhere: does nothing, returns None."""
    global _started
    if os.name != 'posix' or not launched_by_torchrun():
        return None
    if _started is None or not _started.is_alive():
        _started = threading.Thread(
            target=_watch, args=(os.getppid(), interval), daemon=True,
            name='mmbcn-exit-with-launcher')
        _started.start()
    return _started


__all__ = ['exit_with_launcher', 'launched_by_torchrun']
