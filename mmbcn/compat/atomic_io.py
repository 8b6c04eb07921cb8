"""Shim: all-or-nothing writes of local files (checkpoints).

mmengine 0.10.7's ``LocalBackend.put`` opens the target path and writes into
it, so a process killed while saving leaves a truncated ``iter_N.pth`` (or
``last_checkpoint``) behind. This module registers, through mmengine's own
``register_backend`` extension point, a local backend whose
``put``/``put_text`` write a temporary file in the same directory and
``os.replace`` it onto the target: a file is either the old complete one or
the new complete one. ``CheckpointHook`` updates ``last_checkpoint`` only
after the checkpoint is written, so ``--resume`` always finds a complete
checkpoint. Applied on ``import mmbcn``.
"""
import os
import os.path as osp
import secrets

from mmengine.fileio import LocalBackend
from mmengine.fileio import io as _fileio
from mmengine.fileio import register_backend

def _create_temp(directory: str, prefix: str):
    """A new file ``<prefix><random>.tmp`` in ``directory``, opened for
    writing with the permissions ``open()`` gives (0o666 less the umask;
    ``tempfile.mkstemp`` would make it 0o600, and the checkpoint with it)."""
    for _ in range(100):
        path = osp.join(directory, f'{prefix}{secrets.token_hex(6)}.tmp')
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary file name in {directory}')


def atomic_write(data: bytes, filepath: str) -> None:
    """Write ``data`` to ``filepath`` so it is never seen half-written."""
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temp(directory, f'.{osp.basename(filepath)}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with all-or-nothing writes."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
# backend instances made before this import would still write in place
for _key, _backend in list(_fileio.backend_instances.items()):
    if type(_backend) is LocalBackend:
        del _fileio.backend_instances[_key]
