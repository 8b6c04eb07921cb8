"""Built-in classification task derived from the shapes generator, for
pretraining a backbone per normalization scheme (the "ImageNet" step of the
papers' protocol, in miniature).

Each image is rendered by :func:`mmbcn.datasets.shapes.render_image` on the
same textured backgrounds and colours as the detection data; its label is
the class of the shape with the largest visible area. By default an image
holds one large shape (half to nine tenths of the image side), centred
objects as in ImageNet: with the detection data's 1-5 small shapes the
label is not learned in a few hundred iterations (training loss still at
chance, ln 4, after 300 iterations of ResNet-18 or of a plain 4-layer CNN),
with one large shape it is. The classes are balanced: image ``i`` has
class ``i mod K`` (images are rendered until one has that label; ties are
never kept).

On-disk layout (one folder per class, what
:class:`mmbcn.datasets.image_folder.ImageFolderDataset` reads)::

    out_dir/train/circle/000000.png ...
    out_dir/train/square/...
    out_dir/val/<class>/...

Generation is deterministic: the same arguments give byte-identical files.
"""
import os
import os.path as osp
from typing import Dict, Union

import cv2
import numpy as np
from tqdm import tqdm

from .shapes import SHAPES_CLASSES, SPLITS, _check_int, _write_png, \
    render_image

#: How to (re)create the data; quoted in error messages.
GENERATE_CLS_HINT = ('generate the built-in classification data with '
                     '`python tools/dataset_converters/make_shapes.py '
                     '--task cls` (writes data/shapes_cls by default)')


def largest_shape_label(seg_map: np.ndarray) -> int:
    """Index (into :data:`SHAPES_CLASSES`) of the class with the largest
    visible area in a seg map (0 = background, k = class k), or -1 when
    there is no shape or two classes tie."""
    areas = np.bincount(seg_map.ravel(), minlength=len(SHAPES_CLASSES) + 1)
    areas = areas[1:len(SHAPES_CLASSES) + 1]
    best = int(areas.argmax())
    if areas[best] == 0 or (areas == areas[best]).sum() > 1:
        return -1
    return best


def generate_shapes_cls(out_dir: Union[str, os.PathLike],
                        num_train: int = 2000,
                        num_val: int = 500,
                        img_size: int = 64,
                        max_objects: int = 1,
                        size_range=(0.5, 0.9),
                        seed: int = 0,
                        progress: bool = True) -> Dict[str, Dict[str, int]]:
    """Write the classification task (layout in the module docstring):
    images of 1 to ``max_objects`` shapes spanning ``size_range`` of the
    image side.

    Returns ``{split: {class name: number of images}}``.
    """
    out_dir = os.fspath(out_dir)
    counts = dict(train=_check_int('num_train', num_train, 1),
                  val=_check_int('num_val', num_val, 1))
    img_size = _check_int('img_size', img_size, 32, 4096)
    seed = _check_int('seed', seed, 0)
    summary = {}
    with tqdm(total=sum(counts.values()), desc='shapes-cls', unit='img',
              disable=not progress) as bar:
        for split_idx, split in enumerate(SPLITS):
            split_dir = osp.join(out_dir, split)
            for name in SHAPES_CLASSES:
                class_dir = osp.join(split_dir, name)
                os.makedirs(class_dir, exist_ok=True)
                for stale in os.listdir(class_dir):
                    if stale.endswith('.png'):
                        os.remove(osp.join(class_dir, stale))
            per_class = dict.fromkeys(SHAPES_CLASSES, 0)
            for idx in range(counts[split]):
                attempt = 0
                while True:  # an independent stream per (image, attempt)
                    rng = np.random.default_rng(
                        [seed, 100 + split_idx, idx, attempt])
                    image, seg_map, _ = render_image(
                        rng, img_size, max_objects, size_range)
                    label = largest_shape_label(seg_map)
                    if label == idx % len(SHAPES_CLASSES):
                        break
                    attempt += 1
                name = SHAPES_CLASSES[label]
                _write_png(osp.join(split_dir, name, f'{idx:06d}.png'),
                           cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                per_class[name] += 1
                bar.update(1)
            summary[split] = per_class
    return summary
