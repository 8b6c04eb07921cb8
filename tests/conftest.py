import os.path as osp
import sys

import pytest

# test helpers (tiny_runner.py) live beside the tests
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A tiny built-in shapes dataset (4 train / 2 val images of 64 px),
    generated once per test session; tests only read it."""
    from mmbcn.datasets import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, num_train=4, num_val=2, img_size=64,
                    progress=False)
    return str(root)


@pytest.fixture
def one_thread():
    """One torch thread for the test (restored afterwards)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
