"""Shim: weights-only loading of mmengine runner checkpoints on torch >= 2.6.

torch.load now defaults to ``weights_only=True``; mmengine 0.10.7 calls it
without the argument, and a runner checkpoint holds mmengine and numpy
objects (the message hub's ``HistoryBuffer`` with numpy arrays and scalars),
so ``--resume``, ``load_from`` and ``tools/test.py`` fail with
``UnpicklingError: Weights only load failed``. Upstream: open-mmlab/mmengine#1655
(report) and open-mmlab/mmengine#1650 (proposed fix, unreleased). The shim
registers a loader for local files with mmengine's ``CheckpointLoader`` (its
own extension point) that keeps weights-only loading and allows exactly the
types such a checkpoint contains, and only while loading it. Applied on
``import mmbcn``.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def checkpoint_safe_globals() -> list:
    """The non-tensor types an mmengine 0.10.7 runner checkpoint contains.

    ``getattr`` is how pickle refers to the statistic methods a
    ``HistoryBuffer`` keeps; the weights-only unpickler still refuses to call
    anything that is not in this list.
    """
    from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    return [HistoryBuffer, getattr, _reconstruct, scalar, np.ndarray,
            np.dtype, *dtypes]


def load_from_local_weights_only(filename: str, map_location=None):
    """mmengine's local checkpoint loader, weights-only with the allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        return torch.load(filename, map_location=map_location,
                          weights_only=True)


if hasattr(torch.serialization, 'safe_globals'):  # torch >= 2.5
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_weights_only, force=True)
