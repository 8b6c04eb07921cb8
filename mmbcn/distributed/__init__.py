from .launcher import exit_with_launcher
from .sync import (DeferredStats, flush_deferred, get_world_size,
                   reduce_batch_moments, sync_batch_norm)

__all__ = ['DeferredStats', 'exit_with_launcher', 'flush_deferred',
           'get_world_size', 'reduce_batch_moments', 'sync_batch_norm']
