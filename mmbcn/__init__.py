"""mmbcn: Weight Standardization and Batch-Channel Normalization for
OpenMMLab 2.x detectors and segmenters.

Importing the package needs torch, mmengine and mmcv only. It applies the
compatibility shims for the pinned stack (:mod:`mmbcn.compat`) and
registers every layer in mmengine's root ``MODELS`` registry and every hook
in ``HOOKS``, so any mmengine project (mmdet, mmseg, mmpretrain, ...) loads
it with ``custom_imports = dict(imports=['mmbcn'],
allow_failed_imports=False)``. The parts that need mmdet or mmseg load when
they are used: the built-in datasets (:mod:`mmbcn.datasets`), the runners
(:mod:`mmbcn.apis`) and deployment (:mod:`mmbcn.deploy`). The layout of the
package is described in ``docs/architecture.md``.
"""
from . import compat  # noqa: F401  (first: shims for the pinned stack)
from . import converters, engine, evaluation, models  # noqa: F401 (registration)
from .models import BCN, WSConv2d
from .schemes import SCHEMES, apply_scheme
from .version import __version__

__all__ = ['BCN', 'WSConv2d', 'SCHEMES', 'apply_scheme', '__version__']
