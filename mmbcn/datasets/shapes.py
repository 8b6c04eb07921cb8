"""Built-in synthetic "shapes" dataset (no download needed).

:func:`generate_shapes` renders small RGB images that each contain a few
coloured geometric shapes (circle, square, triangle, star) of varied size,
colour and rotation on a textured background (gradients, stripes, blotches,
noise). Shapes drawn later cover earlier ones; every annotation describes
only the *visible* part of its shape and shapes that end up (nearly) hidden
are dropped before rendering, so images and labels always agree.

On-disk layout written under ``out_dir``::

    out_dir/
      images/train/000000.png ...            RGB images (img_size x img_size)
      images/val/000000.png ...
      annotations/instances_train.json       COCO instance annotations
      annotations/instances_val.json
      seg_maps/train/000000.png ...          uint8 semantic masks
      seg_maps/val/000000.png ...

COCO files: ``images`` (``id`` = index + 1, ``file_name`` = ``000000.png``,
``width``, ``height``), ``annotations`` (``bbox`` = ``[x, y, w, h]`` of the
visible mask, ``area`` = visible pixel count, ``iscrowd`` = 0,
``segmentation`` = compressed RLE with ``counts`` as ``str``,
``category_id`` in 1..K) and ``categories`` (ids 1..K in the order of
:data:`SHAPES_CLASSES`). Semantic masks use 0 for background and ``k`` for
category ``k``; they equal the union of the instance masks of each class.

Generation is deterministic: the same arguments (including ``seed``) give
byte-identical files.
"""
import json
import numbers
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

#: Object classes; category ids are 1..K in this order.
SHAPES_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star')
#: Visualisation colour (RGB) of each class in :data:`SHAPES_CLASSES`.
SHAPES_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (220, 20, 60), (0, 120, 230), (250, 170, 30), (60, 180, 75))

SPLITS: Tuple[str, ...] = ('train', 'val')

#: How to (re)create the data; quoted in error messages.
GENERATE_HINT = ('generate the built-in shapes data with '
                 '`python tools/dataset_converters/make_shapes.py` '
                 '(writes data/shapes by default; see --help)')

# Rendering parameters.
_SIZE_RANGE = (0.15, 0.45)    # shape extent, as a fraction of the image side
_MAX_OBJECTS = 5              # 1.._MAX_OBJECTS shapes are attempted per image
_MIN_VISIBLE_FRACTION = 0.3   # drop shapes with less of their area visible
_MIN_VISIBLE_PIXELS = 16      # ... or fewer visible pixels than this
_PLACEMENT_TRIES = 8          # positions tried to limit heavy occlusion
_MAX_NEW_OVERLAP = 0.3        # accepted overlap of a new shape with the rest
_MIN_BG_DISTANCE = 110.0      # wanted RGB distance object <-> background
_MIN_OBJ_DISTANCE = 60.0      # wanted RGB distance between objects
_SUBPIXEL_SHIFT = 4           # cv2 fixed-point bits for smoother outlines


# --------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int,
               maximum: Optional[int] = None) -> int:
    """Return ``value`` as int or raise a ValueError naming the argument."""
    valid = f'an integer >= {minimum}' if maximum is None else \
        f'an integer in [{minimum}, {maximum}]'
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{name} must be {valid}, got {value!r} '
                         f'(type {type(value).__name__})')
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f'{name} must be {valid}, got {value}')
    return value


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _background(rng: np.random.Generator,
                size: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Random textured background (float32 HxWx3, RGB) and its key colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c1 = rng.uniform(30, 225, 3)
    c2 = np.clip(c1 + rng.uniform(-55, 55, 3), 0, 255)
    kind = int(rng.integers(4))
    theta = rng.uniform(0, 2 * np.pi)
    proj = xx * np.cos(theta) + yy * np.sin(theta)
    if kind == 0:    # linear gradient
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    elif kind == 1:  # sinusoidal stripes
        freq = rng.uniform(3, 10)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * proj +
                               rng.uniform(0, 2 * np.pi))
    elif kind == 2:  # smooth blotches (up-sampled coarse noise)
        cells = int(rng.integers(3, 9))
        coarse = rng.random((cells, cells)).astype(np.float32)
        t = np.clip(
            cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC),
            0, 1)
    else:            # flat colour, texture from the noise below only
        t = np.zeros((size, size), np.float32)
    img = c1 + (c2 - c1) * t[..., None]
    img = img + rng.normal(0, rng.uniform(3, 15), (size, size, 3))
    return img.astype(np.float32), [c1, c2]


def _pick_colour(rng: np.random.Generator, bg_colours: Sequence[np.ndarray],
                 used: Sequence[np.ndarray]) -> np.ndarray:
    """Random RGB colour far from the background and from other objects."""
    best, best_score = None, -np.inf
    for _ in range(30):
        colour = rng.uniform(0, 255, 3)
        d_bg = min(np.linalg.norm(colour - c) for c in bg_colours)
        d_obj = min((np.linalg.norm(colour - c) for c in used),
                    default=np.inf)
        if d_bg >= _MIN_BG_DISTANCE and d_obj >= _MIN_OBJ_DISTANCE:
            return colour
        score = min(d_bg / _MIN_BG_DISTANCE, d_obj / _MIN_OBJ_DISTANCE)
        if score > best_score:
            best, best_score = colour, score
    return best


def _shape_mask(kind: str, cx: float, cy: float, radius: float, angle: float,
                size: int) -> np.ndarray:
    """Filled (non anti-aliased) mask of one shape as a bool HxW array.

    ``radius`` is the circumradius; ``angle`` the rotation in radians.
    """
    mask = np.zeros((size, size), np.uint8)
    scale = 1 << _SUBPIXEL_SHIFT
    if kind == 'circle':
        cv2.circle(mask, (int(round(cx * scale)), int(round(cy * scale))),
                   int(round(radius * scale)), 1, -1, cv2.LINE_8,
                   _SUBPIXEL_SHIFT)
        return mask.astype(bool)
    if kind == 'square':
        angles = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        radii = np.full(4, radius)
    elif kind == 'triangle':
        angles = angle + np.arange(3) * 2 * np.pi / 3
        radii = np.full(3, radius)
    elif kind == 'star':
        angles = angle + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f'unknown shape kind {kind!r}')
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                   axis=1)
    pts = np.round(pts * scale).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, _SUBPIXEL_SHIFT)
    return mask.astype(bool)


def _compose(masks: Sequence[np.ndarray], keep: Sequence[int],
             size: int) -> np.ndarray:
    """Map of which kept shape is on top at each pixel (0 = none, i + 1)."""
    id_map = np.zeros((size, size), np.int32)
    for i in keep:  # later shapes cover earlier ones
        id_map[masks[i]] = i + 1
    return id_map


Instance = Tuple[int, np.ndarray]  # (category_id, visible bool mask)


def render_image(rng: np.random.Generator, size: int,
                 max_objects: int = _MAX_OBJECTS,
                 size_range: Tuple[float, float] = _SIZE_RANGE
                 ) -> Tuple[np.ndarray, np.ndarray, List[Instance]]:
    """Render one image of 1 to ``max_objects`` shapes, each spanning a
    fraction ``size_range`` of the image side.

    Returns:
        tuple: ``(image, seg_map, instances)`` with ``image`` an RGB uint8
        HxWx3 array, ``seg_map`` a uint8 HxW array (0 = background, k =
        class k) and ``instances`` a list of ``(category_id, visible_mask)``
        in drawing order (bottom first).
    """
    background, bg_colours = _background(rng, size)
    num = int(rng.integers(1, max_objects + 1))
    kinds, masks, colours = [], [], []
    union = np.zeros((size, size), bool)
    for _ in range(num):
        label = int(rng.integers(len(SHAPES_CLASSES)))
        radius = 0.5 * size * rng.uniform(*size_range)
        angle = rng.uniform(0, 2 * np.pi)
        lo, hi = radius + 1, size - 1 - radius
        # Try a few positions; prefer one that does not bury earlier shapes.
        best, best_overlap = None, np.inf
        for _ in range(_PLACEMENT_TRIES):
            cx, cy = rng.uniform(lo, hi, 2)
            mask = _shape_mask(SHAPES_CLASSES[label], cx, cy, radius, angle,
                               size)
            overlap = (mask & union).sum() / max(int(mask.sum()), 1)
            if overlap < best_overlap:
                best, best_overlap = mask, overlap
            if overlap <= _MAX_NEW_OVERLAP:
                break
        kinds.append(label)
        masks.append(best)
        colours.append(_pick_colour(rng, bg_colours, colours))
        union |= best

    # Drop shapes that are (nearly) hidden. Removing a shape only uncovers
    # the others, so a single pass leaves every remaining shape valid.
    id_map = _compose(masks, range(num), size)
    keep = []
    for i in range(num):
        visible = int((id_map == i + 1).sum())
        if (visible >= _MIN_VISIBLE_PIXELS and
                visible >= _MIN_VISIBLE_FRACTION * masks[i].sum()):
            keep.append(i)
    id_map = _compose(masks, keep, size)

    image = background
    instances = []
    seg_map = np.zeros((size, size), np.uint8)
    for i in keep:
        visible = id_map == i + 1
        shade = colours[i] + rng.normal(0, 3, (int(visible.sum()), 3))
        image[visible] = shade
        seg_map[visible] = kinds[i] + 1
        instances.append((kinds[i] + 1, visible))
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, seg_map, instances


def _mask_to_annotation(mask: np.ndarray) -> dict:
    """COCO fields (segmentation RLE, area, bbox) of a bool mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    return dict(segmentation=rle, area=int(mask.sum()), bbox=bbox)


def _write_png(path: str, array: np.ndarray) -> None:
    if not cv2.imwrite(path, array):
        raise OSError(f'failed to write image {path!r}')


def _remove_stale(directory: str, count: int) -> None:
    """Delete numbered PNGs left over from an earlier, larger generation."""
    for name in os.listdir(directory):
        match = re.fullmatch(r'(\d{6})\.png', name)
        if match and int(match.group(1)) >= count:
            os.remove(osp.join(directory, name))


def generate_shapes(out_dir: Union[str, os.PathLike],
                    num_train: int = 400,
                    num_val: int = 100,
                    img_size: int = 128,
                    seed: int = 0,
                    progress: bool = True) -> Dict[str, Dict[str, int]]:
    """Write the shapes dataset (layout in the module docstring).

    Args:
        out_dir: Output root; created if needed. Existing files of the
            dataset layout are overwritten (stale numbered PNGs beyond the
            new counts are removed).
        num_train: Number of training images (>= 1).
        num_val: Number of validation images (>= 1).
        img_size: Side length of the square images in pixels (32..4096).
        seed: Non-negative random seed; same seed -> byte-identical output.
        progress: Show a tqdm progress bar.

    Returns:
        dict: ``{split: {'images': n, 'instances': m}}`` for each split.
    """
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise ValueError('out_dir must be a non-empty path (str or '
                         f'os.PathLike), got {out_dir!r}')
    out_dir = os.fspath(out_dir)
    counts = dict(train=_check_int('num_train', num_train, 1),
                  val=_check_int('num_val', num_val, 1))
    img_size = _check_int('img_size', img_size, 32, 4096)
    seed = _check_int('seed', seed, 0)

    categories = [dict(id=k + 1, name=name, supercategory='shape')
                  for k, name in enumerate(SHAPES_CLASSES)]
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    summary = {}
    with tqdm(total=sum(counts.values()), desc='shapes', unit='img',
              disable=not progress) as bar:
        for split_idx, split in enumerate(SPLITS):
            img_dir = osp.join(out_dir, 'images', split)
            seg_dir = osp.join(out_dir, 'seg_maps', split)
            for d in (img_dir, seg_dir):
                os.makedirs(d, exist_ok=True)
                _remove_stale(d, counts[split])
            images, annotations = [], []
            for idx in range(counts[split]):
                # Independent stream per image: stable whatever the counts.
                rng = np.random.default_rng([seed, split_idx, idx])
                image, seg_map, instances = render_image(rng, img_size)
                file_name = f'{idx:06d}.png'
                _write_png(osp.join(img_dir, file_name),
                           cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                _write_png(osp.join(seg_dir, file_name), seg_map)
                images.append(dict(id=idx + 1, file_name=file_name,
                                   width=img_size, height=img_size))
                for category_id, mask in instances:
                    annotations.append(dict(
                        id=len(annotations) + 1, image_id=idx + 1,
                        category_id=category_id, iscrowd=0,
                        **_mask_to_annotation(mask)))
                bar.update(1)
            coco = dict(
                info=dict(description='mmbcn synthetic shapes', split=split,
                          seed=seed),
                images=images, annotations=annotations,
                categories=categories)
            with open(osp.join(ann_dir, f'instances_{split}.json'), 'w',
                      encoding='utf-8') as f:
                json.dump(coco, f)
            summary[split] = dict(images=len(images),
                                  instances=len(annotations))
    return summary


# --------------------------------------------------------------------------
# validation of annotation files (used by the dataset classes)
# --------------------------------------------------------------------------
_REQUIRED_FIELDS = dict(
    images=('id', 'file_name', 'width', 'height'),
    annotations=('id', 'image_id', 'category_id', 'bbox'),
    categories=('id', 'name'))


def check_coco_annotation(path: Union[str, os.PathLike],
                          classes: Optional[Sequence[str]] = None) -> dict:
    """Check that ``path`` is a usable COCO instance file and return it.

    Args:
        path: The annotation JSON file.
        classes: If given, every name must appear among the categories.

    Raises:
        FileNotFoundError: ``path`` does not exist (message says how to
            generate the data).
        ValueError: the file is not valid JSON or lacks the COCO structure
            (message names the file and the problem).
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'COCO annotation file not found: {path!r}. To create it, '
            f'{GENERATE_HINT}.')

    def invalid(problem: str) -> ValueError:
        return ValueError(f'Invalid COCO annotation file {path!r}: {problem}. '
                          f'To recreate it, {GENERATE_HINT}.')

    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f'not valid JSON (truncated or corrupt?): {e}') from e
    if not isinstance(data, dict):
        raise invalid('top level is a JSON '
                      f'{type(data).__name__}, expected an object')
    missing = [k for k in _REQUIRED_FIELDS if k not in data]
    if missing:
        raise invalid(f'missing top-level key(s) {missing}')
    for key, fields in _REQUIRED_FIELDS.items():
        if not isinstance(data[key], list):
            raise invalid(f"'{key}' must be a list, got "
                          f'{type(data[key]).__name__}')
        for i, entry in enumerate(data[key]):
            if not isinstance(entry, dict):
                raise invalid(f"'{key}[{i}]' is not an object")
            absent = [f for f in fields if f not in entry]
            if absent:
                raise invalid(f"'{key}[{i}]' lacks field(s) {absent}")
    if not data['categories']:
        raise invalid("'categories' is empty")
    image_ids = {img['id'] for img in data['images']}
    cat_ids = {cat['id'] for cat in data['categories']}
    for i, ann in enumerate(data['annotations']):
        if ann['image_id'] not in image_ids:
            raise invalid(f"'annotations[{i}]' refers to unknown image_id "
                          f"{ann['image_id']!r}")
        if ann['category_id'] not in cat_ids:
            raise invalid(f"'annotations[{i}]' refers to unknown category_id "
                          f"{ann['category_id']!r}")
        bbox = ann['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise invalid(f"'annotations[{i}].bbox' must be [x, y, w, h], "
                          f'got {bbox!r}')
    if classes is not None:
        names = {cat['name'] for cat in data['categories']}
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise invalid(f'class(es) {unknown} not among the categories '
                          f'{sorted(names)}')
    return data
