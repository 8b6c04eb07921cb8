"""Paths and small shared helpers of the repository for the tests (importable from any test: the
tests folder is on sys.path, see conftest.py)."""
import glob
import os.path as osp
import socket

TESTS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS)


def shapes_config(pattern: str) -> str:
    """The first config of configs/shapes/ matching ``pattern``."""
    found = sorted(glob.glob(osp.join(REPO, 'configs', 'shapes', pattern)))
    assert found, f'no config configs/shapes/{pattern}'
    return found[0]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
