from .batch_renorm_hook import BatchRenormScheduleHook
from .bcn_hooks import (BCNDeferredSyncHook, BCNHealthCheckHook,
                        BCNUpdateRateHook, bcn_layers)
from .cbn_hook import CBNLinkHook
from .memory_hook import PeakMemoryHook, peak_memory_mb
from .norm_only_hook import NormOnlyHook
from .prepbn_hook import PRepBNScheduleHook
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state
from .singularity_hook import SingularityHook

__all__ = ['BatchRenormScheduleHook', 'BCNDeferredSyncHook',
           'BCNHealthCheckHook', 'BCNUpdateRateHook', 'CBNLinkHook',
           'NormOnlyHook', 'PeakMemoryHook', 'PRepBNScheduleHook',
           'RNGStateHook', 'SingularityHook', 'bcn_layers', 'get_rng_state',
           'peak_memory_mb', 'set_rng_state']
