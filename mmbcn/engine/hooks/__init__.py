from .batch_renorm_hook import BatchRenormScheduleHook
from .bcn_hooks import (BCNDeferredSyncHook, BCNHealthCheckHook,
                        BCNUpdateRateHook, bcn_layers)
from .cbn_hook import CBNLinkHook
from .health_check_hook import HealthCheckHook, norm_statistics
from .memory_hook import PeakMemoryHook, peak_memory_mb
from .norm_only_hook import NormOnlyHook
from .norm_scheme_hook import (NormSchemeHook, SchemeMismatchError,
                               layer_signature)
from .prepbn_hook import PRepBNScheduleHook
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state
from .singularity_hook import SingularityHook

__all__ = ['BatchRenormScheduleHook', 'BCNDeferredSyncHook',
           'BCNHealthCheckHook', 'BCNUpdateRateHook', 'CBNLinkHook',
           'HealthCheckHook', 'NormOnlyHook', 'NormSchemeHook',
           'PeakMemoryHook', 'PRepBNScheduleHook', 'RNGStateHook',
           'SchemeMismatchError', 'SingularityHook', 'bcn_layers',
           'get_rng_state', 'layer_signature', 'norm_statistics',
           'peak_memory_mb', 'set_rng_state']
