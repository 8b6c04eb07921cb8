"""Datasets of mmbcn: the built-in synthetic shapes data.

* :mod:`.shapes` -- generator (:func:`generate_shapes`) and checks.
* :class:`ShapesDetDataset` (:mod:`.shapes_det`, needs mmdet) -- COCO
  instances.
* :class:`ShapesSegDataset` (:mod:`.shapes_seg`, needs mmseg) -- semantic
  segmentation.

The two datasets register in their toolbox's ``DATASETS`` when their module
is imported: configs name it in ``custom_imports``
(``'mmbcn.datasets.shapes_det'`` / ``'mmbcn.datasets.shapes_seg'``), and
:func:`mmbcn.scope.register_scope` imports it for mmbcn's tools. Importing
this package imports neither mmdet nor mmseg; the two classes are loaded on
first access (``from mmbcn.datasets import ShapesDetDataset``).
"""
import importlib

from .shapes import (SHAPES_CLASSES, SHAPES_PALETTE, check_coco_annotation,
                     generate_shapes)

_DATASET_MODULES = {'ShapesDetDataset': '.shapes_det',
                    'ShapesSegDataset': '.shapes_seg'}


def __getattr__(name):
    if name in _DATASET_MODULES:
        module = importlib.import_module(_DATASET_MODULES[name], __name__)
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'SHAPES_CLASSES', 'SHAPES_PALETTE', 'generate_shapes',
    'check_coco_annotation', 'ShapesDetDataset', 'ShapesSegDataset'
]
