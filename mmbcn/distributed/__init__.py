from .sync import (DeferredStats, flush_deferred, get_world_size,
                   reduce_batch_moments, sync_batch_norm)

__all__ = ['DeferredStats', 'flush_deferred', 'get_world_size',
           'reduce_batch_moments', 'sync_batch_norm']
