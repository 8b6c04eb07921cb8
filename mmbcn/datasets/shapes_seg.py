"""mmseg dataset for the built-in shapes data (semantic segmentation).

Images are ``<img_path>/*.png`` and label maps the PNGs of the same name in
``<seg_map_path>`` (0 = background, k = class k). Typical config::

    dict(type='ShapesSegDataset', data_root='data/shapes/',
         data_prefix=dict(img_path='images/train',
                          seg_map_path='seg_maps/train'),
         pipeline=[...])
"""
import os.path as osp
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .shapes import GENERATE_HINT, SHAPES_CLASSES, SHAPES_PALETTE


@DATASETS.register_module()
class ShapesSegDataset(BaseSegDataset):
    """Synthetic shapes for semantic segmentation (background + K classes).

    A missing image / label directory, an empty split, a missing image or
    label map raises an error naming the path and how to generate the data
    (when the dataset is built, before training starts).
    """

    METAINFO = dict(
        classes=('background', ) + SHAPES_CLASSES,
        palette=[[0, 0, 0]] + [list(c) for c in SHAPES_PALETTE])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        # data_root has already been joined into data_prefix at this point.
        img_dir = self.data_prefix.get('img_path', None)
        seg_dir = self.data_prefix.get('seg_map_path', None)
        for kind, directory in (('image', img_dir), ('label map', seg_dir)):
            if directory is not None and not osp.isdir(directory):
                raise FileNotFoundError(
                    f'Shapes {kind} directory not found: {directory!r}. '
                    f'To create it, {GENERATE_HINT}.')
        data_list = super().load_data_list()
        if not data_list:
            raise ValueError(
                f'No *{self.img_suffix} images found in {img_dir!r} '
                f'(ann_file={self.ann_file!r}); the split is empty. '
                f'To create it, {GENERATE_HINT}.')
        for info in data_list:
            if not osp.isfile(info['img_path']):
                raise FileNotFoundError(
                    f"Shapes image not found: {info['img_path']!r}. To "
                    f'recreate the data, {GENERATE_HINT}.')
            seg_map = info.get('seg_map_path')
            if seg_map is not None and not osp.isfile(seg_map):
                raise FileNotFoundError(
                    f'Label map not found: {seg_map!r} (for image '
                    f"{info['img_path']!r}). To recreate the data, "
                    f'{GENERATE_HINT}.')
        return data_list
