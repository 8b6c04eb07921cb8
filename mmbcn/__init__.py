"""mmbcn: Weight Standardization and Batch-Channel Normalization for
OpenMMLab 2.x detectors and segmenters.

Importing the package applies the compatibility shims for the pinned stack
(:mod:`mmbcn.compat`), registers every layer in mmengine's root ``MODELS``
registry and the built-in datasets in mmdet's / mmseg's ``DATASETS``, so
configs load it with
``custom_imports = dict(imports=['mmbcn'], allow_failed_imports=False)``.
"""
from . import compat  # noqa: F401  (first: shims for the pinned stack)
from . import datasets, engine, models  # noqa: F401  (registration)
from .models import BCN, WSConv2d
from .schemes import SCHEMES, apply_scheme
from .version import __version__

__all__ = ['BCN', 'WSConv2d', 'SCHEMES', 'apply_scheme', '__version__']
