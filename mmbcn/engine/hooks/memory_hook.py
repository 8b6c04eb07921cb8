"""Logs the peak memory of training, on CPU as well as on GPU."""
import resource
import sys

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch, or else the process's peak
    resident set size (CPU training), in MiB."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10


@HOOKS.register_module()
class PeakMemoryHook(Hook):
    """Logs ``peak_mem_mb`` with the training scalars every iteration
    (mmengine logs ``memory`` only for CUDA)."""
    priority = 'BELOW_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        runner.message_hub.update_scalar('train/peak_mem_mb',
                                         peak_memory_mb())
