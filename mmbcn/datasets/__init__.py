"""Datasets of mmbcn: the built-in synthetic shapes data.

* :mod:`.shapes` -- generator (:func:`generate_shapes`) and checks.
* :class:`ShapesDetDataset` -- mmdet (COCO instances) dataset.
* :class:`ShapesSegDataset` -- mmseg (semantic segmentation) dataset.
"""
from .shapes import (SHAPES_CLASSES, SHAPES_PALETTE, check_coco_annotation,
                     generate_shapes)
from .shapes_det import ShapesDetDataset
from .shapes_seg import ShapesSegDataset

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_PALETTE', 'generate_shapes',
    'check_coco_annotation', 'ShapesDetDataset', 'ShapesSegDataset'
]
