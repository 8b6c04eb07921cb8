"""Transforms of the classification pipeline (backbone pretraining):
ImageNet's random-resized crop and short-edge resize, and the packing into
model inputs. Registered in mmengine's root ``TRANSFORMS``; the loading,
flipping and centre crop are mmcv's (``LoadImageFromFile``,
``RandomFlip``, ``CenterCrop``).
"""
import math
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS
from mmengine.structures import BaseDataElement


def _pair(size) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def random_resized_box(height: int, width: int, rng: np.random.Generator,
                       scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                       tries: int = 10) -> Tuple[int, int, int, int]:
    """``(top, left, h, w)``: a box of a random fraction ``scale`` of the
    area and aspect ratio ``ratio`` (log-uniform) inside the image; after
    ``tries`` misses, the largest centred box of a valid ratio."""
    area = height * width
    for _ in range(tries):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]),
                                      math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return (int(rng.integers(0, height - h + 1)),
                    int(rng.integers(0, width - w + 1)), h, w)
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random box (:func:`random_resized_box`) and resize it to
    ``size``, ImageNet training's augmentation. Uses numpy's global random
    state, which mmengine seeds per worker (``randomness.seed``)."""

    def __init__(self, size: Union[int, Sequence[int]],
                 scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation: str = 'bilinear'):
        self.size = _pair(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        rng = np.random.default_rng(np.random.randint(2**31))
        top, left, h, w = random_resized_box(*img.shape[:2], rng,
                                             self.scale, self.ratio)
        crop = img[top:top + h, left:left + w]
        results['img'] = mmcv.imresize(crop, self.size[::-1],
                                       interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class ResizeShortEdge(BaseTransform):
    """Resize so that the shorter side is ``size`` (aspect kept), as
    ImageNet evaluation does before its centre crop."""

    def __init__(self, size: int, interpolation: str = 'bilinear'):
        self.size = int(size)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        factor = self.size / min(h, w)
        new = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
        results['img'] = mmcv.imresize(results['img'], new,
                                       interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """``dict(inputs=CxHxW uint8 tensor, data_samples=BaseDataElement with
    gt_label)``, what :class:`mmbcn.models.BackboneClassifier` takes."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0,
                                                                     1)))
        sample = BaseDataElement(metainfo=dict(
            img_path=results.get('img_path'), img_shape=img.shape[:2]))
        sample.gt_label = torch.tensor(int(results['gt_label']))
        return dict(inputs=inputs, data_samples=sample)
