from .norm_aware_constructor import NormAwareOptimWrapperConstructor

__all__ = ['NormAwareOptimWrapperConstructor']
