from .bcn import channel_moments, fixed_stats_bcn

__all__ = ['channel_moments', 'fixed_stats_bcn']
