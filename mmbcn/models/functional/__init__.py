from .bcn import (can_fuse, channel_moments, fixed_stats_bcn,
                  fused_micro_bcn)
from .bcn_triton import can_use_triton, triton_micro_bcn

__all__ = ['channel_moments', 'fixed_stats_bcn', 'fused_micro_bcn',
           'can_fuse', 'can_use_triton', 'triton_micro_bcn']
