from .bcn_hooks import (BCNDeferredSyncHook, BCNHealthCheckHook,
                        BCNUpdateRateHook, bcn_layers)
from .singularity_hook import SingularityHook

__all__ = ['BCNDeferredSyncHook', 'BCNHealthCheckHook', 'BCNUpdateRateHook',
           'SingularityHook', 'bcn_layers']
