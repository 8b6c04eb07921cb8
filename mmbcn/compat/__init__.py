"""Compatibility shims for the pinned stack on current torch, one module
each; every module names what it works around.

- :mod:`.checkpoint`: one weights-only loader for every checkpoint (local,
  URL, hub cache, model-zoo names), applied on import.
- :mod:`.atomic_io`: all-or-nothing checkpoint writes (applied on import).
- :mod:`.checkpoint_hook`: ``CheckpointHook`` removes old checkpoints only
  after the new one is complete (registered on import).
- :mod:`.config_package`: ``mmbcn::`` config bases resolve through
  mmengine (applied on import).
- :mod:`.cpu_distributed`: distributed runs on CPU-only machines with gloo
  (applied by :func:`mmbcn.apis.build_runner`).
"""
from .atomic_io import AtomicLocalBackend, atomic_write
from .checkpoint import (TRUST_ENV, CheckpointError, checkpoint_safe_globals,
                         load_file, load_from_local_weights_only)
from .checkpoint_hook import CheckpointHook
from .config_package import PACKAGE as CONFIG_PACKAGES
from .cpu_distributed import (CPU_MODEL_WRAPPER, SYNCBN_TYPES,
                              CPUDistributedError, cpu_dist_env, find_syncbn,
                              prepare_cpu_distributed, syncbn_on_cpu_error)

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'CheckpointHook', 'TRUST_ENV',
    'CheckpointError', 'checkpoint_safe_globals', 'load_file',
    'CONFIG_PACKAGES',
    'load_from_local_weights_only', 'CPU_MODEL_WRAPPER', 'SYNCBN_TYPES',
    'CPUDistributedError', 'cpu_dist_env', 'find_syncbn',
    'prepare_cpu_distributed', 'syncbn_on_cpu_error'
]
