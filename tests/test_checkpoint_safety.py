"""A checkpoint interrupted while being written never replaces a good one."""
import os
import signal
import subprocess
import sys
import time

from mmengine.fileio import get_file_backend

from mmbcn.compat import AtomicLocalBackend

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
