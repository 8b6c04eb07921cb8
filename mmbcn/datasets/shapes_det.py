"""mmdet dataset for the built-in shapes data (COCO instance format).

Typical config (paths relative to ``data_root``, see
:mod:`mmbcn.datasets.shapes` for the layout)::

    dict(type='ShapesDetDataset', data_root='data/shapes/',
         ann_file='annotations/instances_train.json',
         data_prefix=dict(img='images/train/'), pipeline=[...])
"""
import os.path as osp
from typing import List

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .shapes import (GENERATE_HINT, SHAPES_CLASSES, SHAPES_PALETTE,
                     check_coco_annotation)


@DATASETS.register_module()
class ShapesDetDataset(CocoDataset):
    """Synthetic shapes for detection / instance segmentation.

    Behaves like :class:`mmdet.datasets.CocoDataset`, but checks its data
    before training starts: a missing or corrupt annotation file, a missing
    image, a split without images (or none left by ``filter_cfg``) are
    errors that name the file and say how to generate the data.
    """

    METAINFO = dict(classes=SHAPES_CLASSES, palette=list(SHAPES_PALETTE))

    def load_data_list(self) -> List[dict]:
        check_coco_annotation(self.ann_file, classes=self.metainfo['classes'])
        data_list = super().load_data_list()
        if not data_list:
            raise ValueError(f'{self.ann_file}: the split has no images. To '
                             f'create the data, {GENERATE_HINT}.')
        for info in data_list:
            if not osp.isfile(info['img_path']):
                raise FileNotFoundError(
                    f"Shapes image not found: {info['img_path']!r} (listed "
                    f'in {self.ann_file}). To recreate the data, '
                    f'{GENERATE_HINT}.')
        return data_list

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if not data_list and not self.test_mode:
            raise ValueError(
                f'{self.ann_file}: no image of the split is left after '
                f'filter_cfg={self.filter_cfg!r} (images without objects, or '
                'smaller than min_size, are left out when training). To '
                f'create the data, {GENERATE_HINT}.')
        return data_list
