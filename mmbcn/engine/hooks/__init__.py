from .bcn_hooks import (BCNDeferredSyncHook, BCNHealthCheckHook,
                        BCNUpdateRateHook, bcn_layers)
from .memory_hook import PeakMemoryHook, peak_memory_mb
from .norm_only_hook import NormOnlyHook
from .singularity_hook import SingularityHook

__all__ = ['BCNDeferredSyncHook', 'BCNHealthCheckHook', 'BCNUpdateRateHook',
           'NormOnlyHook', 'PeakMemoryHook', 'SingularityHook', 'bcn_layers',
           'peak_memory_mb']
