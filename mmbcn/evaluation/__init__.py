"""Metrics of mmbcn (registered in mmengine's root ``METRICS``)."""
from .accuracy import ClsAccuracy

__all__ = ['ClsAccuracy']
