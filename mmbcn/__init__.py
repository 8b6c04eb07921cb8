"""mmbcn: Weight Standardization and Batch-Channel Normalization for
OpenMMLab 2.x detectors and segmenters.

Importing the package applies the compatibility shims for the pinned stack
(:mod:`mmbcn.compat`) and registers every layer in mmengine's root
``MODELS`` registry, so configs load it with
``custom_imports = dict(imports=['mmbcn'], allow_failed_imports=False)``.
"""
from . import compat  # noqa: F401  (first: shims for the pinned stack)
from . import models  # noqa: F401
from .models import BCN, WSConv2d
from .version import __version__

__all__ = ['BCN', 'WSConv2d', '__version__']
