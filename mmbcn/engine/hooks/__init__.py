from .bcn_hooks import (BCNDeferredSyncHook, BCNHealthCheckHook,
                        BCNUpdateRateHook, bcn_layers)

__all__ = ['BCNDeferredSyncHook', 'BCNHealthCheckHook', 'BCNUpdateRateHook',
           'bcn_layers']
