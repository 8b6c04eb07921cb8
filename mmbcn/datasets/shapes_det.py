"""mmdet dataset for the built-in shapes data (COCO instance format).

Typical config (paths relative to ``data_root``, see
:mod:`mmbcn.datasets.shapes` for the layout)::

    dict(type='ShapesDetDataset', data_root='data/shapes/',
         ann_file='annotations/instances_train.json',
         data_prefix=dict(img='images/train/'), pipeline=[...])
"""
from typing import List

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .shapes import SHAPES_CLASSES, SHAPES_PALETTE, check_coco_annotation


@DATASETS.register_module()
class ShapesDetDataset(CocoDataset):
    """Synthetic shapes for detection / instance segmentation.

    Behaves like :class:`mmdet.datasets.CocoDataset`, but checks the
    annotation file first so that a missing or corrupt file gives a clear
    error that says how to generate the data.
    """

    METAINFO = dict(classes=SHAPES_CLASSES, palette=list(SHAPES_PALETTE))

    def load_data_list(self) -> List[dict]:
        check_coco_annotation(self.ann_file, classes=self.metainfo['classes'])
        return super().load_data_list()
