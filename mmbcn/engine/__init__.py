from .hooks import *  # noqa: F401,F403 (registers the hooks)
from .norm_only import freeze_all_but_norm
from .optimizers import NormAwareOptimWrapperConstructor

__all__ = ['freeze_all_but_norm', 'NormAwareOptimWrapperConstructor']
