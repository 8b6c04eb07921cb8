"""Whole-model training-iteration benchmark: one scheme against another.

A training iteration is what ``Runner.train`` does per step:
``model.train_step(data, optim_wrapper)`` runs the data preprocessor, the
forward pass with the losses, their sum, backward and the optimizer step.
Each scheme's model is built from the project's config for that scheme
(:data:`MODEL_CONFIGS`) with random weights and fed the same random but valid
batch (images with boxes, labels and instance masks for Mask R-CNN; images
with a label map for DeepLabV3). The schemes are run in alternating rounds in
one process, the order reversed every other round, so that machine noise
reaches all of them alike; the ratio to the baseline is the median of the
per-round ratios. Before each iteration the random generators are reseeded
with the round number, so that every scheme samples the same RoIs.

The optimizer is the config's (type, momentum, weight decay) with its
learning rate replaced by :data:`BENCH_LR`: the cost of a step does not
depend on it, and randomly initialised detectors trained at full rate can
diverge within the few iterations a benchmark runs.
"""
import copy
import os.path as osp
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, List, Sequence

import numpy as np
import torch

from ..apis import build_model, load_config
from ..reports.tables import markdown_table
from ..schemes import get_scheme
from .timing import ratio_stats, time_rounds

# model name -> (leaf config under configs/ with '{scheme}' for the scheme,
#                task)
MODEL_CONFIGS = {
    'mask-rcnn': ('mask_rcnn/mask-rcnn_r50_fpn_{scheme}_1x_coco.py', 'det'),
    'deeplabv3': ('deeplabv3/deeplabv3_r50-d8_{scheme}_4xb2-20k_voc12aug-'
                  '512x512.py', 'seg'),
}
MODEL_SCHEMES = ('gn', 'gn-ws', 'bcn-ws', 'bcn', 'bn', 'syncbn')
BENCH_LR = 1e-4


def model_config_path(configs_dir: str, model: str, scheme: str) -> str:
    """The project config of ``model`` with ``scheme``; clear errors for
    unknown names and missing files."""
    if model not in MODEL_CONFIGS:
        raise ValueError(f'model {model!r} is not valid; choose from '
                         f'{", ".join(MODEL_CONFIGS)}')
    if scheme not in MODEL_SCHEMES:
        raise ValueError(f'scheme {scheme!r} has no {model} config; choose '
                         f'from {", ".join(MODEL_SCHEMES)}')
    pattern, task = MODEL_CONFIGS[model]
    if task == 'det' and get_scheme(scheme).normalize_all:
        scheme = f'{scheme}-all'  # the detector config names say so
    name = pattern.format(scheme=scheme)
    path = osp.join(configs_dir, name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no config for {model} / {scheme}: {path}')
    return path


def build_train_model(config: str, size: int, device: str = 'cpu'):
    """(model in train mode, optim wrapper, task) from a project config."""
    from mmengine.optim import build_optim_wrapper

    cfg = load_config(config)
    task = 'seg' if cfg.default_scope == 'mmseg' else 'det'
    if task == 'seg':
        # pad to the benchmark size, not the config's crop size
        cfg.model.data_preprocessor.size = (size, size)
    model = build_model(cfg, device=device).train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.optimizer.lr = BENCH_LR
    optim_cfg.pop('clip_grad', None)
    return model, build_optim_wrapper(model, optim_cfg), task


def random_det_batch(batch: int, size: int, num_objects: int = 4,
                     num_classes: int = 80, seed: int = 0) -> dict:
    """A detection batch as mmdet's ``PackDetInputs`` makes it: ``inputs``
    (uint8 3 x size x size images) and ``data_samples`` with boxes, labels
    and bitmap masks (an ellipse inside each box)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    ys, xs = np.mgrid[0:size, 0:size]
    for _ in range(batch):
        inputs.append(torch.from_numpy(
            rng.randint(0, 256, (3, size, size), dtype=np.uint8)))
        wh = rng.uniform(size / 16, size / 2, (num_objects, 2))
        x0y0 = rng.uniform(0, 1, (num_objects, 2)) * (size - wh)
        boxes = np.concatenate([x0y0, x0y0 + wh], 1).astype(np.float32)
        masks = np.zeros((num_objects, size, size), dtype=np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, \
                (x1 - x0) / 2, (y1 - y0) / 2
            masks[i] = ((xs - cx) / rx)**2 + ((ys - cy) / ry)**2 <= 1
        sample = DetDataSample(metainfo=dict(
            img_id=len(samples), img_path=None, ori_shape=(size, size),
            img_shape=(size, size), scale_factor=(1.0, 1.0), flip=False,
            flip_direction=None))
        sample.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
            labels=torch.from_numpy(
                rng.randint(0, num_classes, num_objects)).long(),
            masks=BitmapMasks(masks, size, size))
        sample.ignored_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.zeros(0, 4)),
            labels=torch.zeros(0, dtype=torch.long))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def random_seg_batch(batch: int, size: int, num_classes: int = 21,
                     seed: int = 0) -> dict:
    """A segmentation batch as mmseg's ``PackSegInputs`` makes it: uint8
    images and label maps of rectangles of random classes on background."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.RandomState(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.from_numpy(
            rng.randint(0, 256, (3, size, size), dtype=np.uint8)))
        label = np.zeros((size, size), dtype=np.int64)
        for _ in range(4):
            x0, y0 = rng.randint(0, size // 2, 2)
            w, h = rng.randint(size // 8, size // 2, 2)
            label[y0:y0 + h, x0:x0 + w] = rng.randint(1, num_classes)
        sample = SegDataSample(metainfo=dict(
            img_path=None, ori_shape=(size, size), img_shape=(size, size),
            pad_shape=(size, size), scale_factor=(1.0, 1.0), flip=False,
            flip_direction=None, reduce_zero_label=False))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def random_batch(task: str, batch: int, size: int, seed: int = 0) -> dict:
    if task == 'det':
        return random_det_batch(batch, size, seed=seed)
    return random_seg_batch(batch, size, seed=seed)


def train_iteration(model, optim_wrapper, data: dict) -> Callable[[int],
                                                                   float]:
    """A function ``step(seed)`` that runs one training iteration on
    ``data`` (reseeding torch and numpy with ``seed`` first) and returns the
    total loss."""
    def step(seed: int) -> float:
        torch.manual_seed(seed)
        np.random.seed(seed)
        # data_samples are modified by the preprocessor (padding): copy
        log_vars = model.train_step(copy.deepcopy(data), optim_wrapper)
        return float(torch.as_tensor(log_vars['loss']).detach())
    return step


def finite_loss(r: int, j: int, loss: float) -> None:
    """A timing check: refuse a round whose step returned a non-finite
    loss."""
    if not np.isfinite(loss):
        raise FloatingPointError(
            f'step {j} returned a non-finite loss ({loss}) in round {r}; '
            'the timing would not be of a normal iteration')


@dataclass
class ModelRow:
    model: str
    batch: int
    size: int
    scheme: str
    median_ms: float
    ratio: float
    ratio_q1: float
    ratio_q3: float


def summarize(model: str, batch: int, size: int, schemes: Sequence[str],
              times: Sequence[Sequence[float]]) -> List[ModelRow]:
    """Rows with median times and ratios to the first scheme (median of the
    per-round ratios, with the quartiles of those ratios)."""
    return [ModelRow(model, batch, size, scheme, statistics.median(ts) * 1e3,
                     *ratio_stats(ts, times[0]))
            for scheme, ts in zip(schemes, times)]


def format_model_table(rows: Sequence[ModelRow], baseline: str) -> str:
    return markdown_table(
        [asdict(r) for r in rows],
        ('model', 'batch', 'size', 'scheme', 'median_ms', 'ratio'),
        headers=dict(size='input', median_ms='iteration ms (median)',
                     ratio=f'ratio to {baseline} (IQR)'),
        formats=dict(size=lambda r: f"{r['size']}x{r['size']}",
                     median_ms='.0f',
                     ratio=lambda r: f"{r['ratio']:.3f} "
                     f"({r['ratio_q1']:.3f}-{r['ratio_q3']:.3f})"),
        right=('batch', 'median_ms'))


def benchmark_model(configs_dir: str, model: str, schemes: Sequence[str],
                    batch: int, size: int, repeats: int, warmup: int = 1,
                    device: str = 'cpu',
                    log: Callable[[str], None] = print) -> List[ModelRow]:
    """Build ``model`` once per scheme, time ``repeats`` alternating rounds
    of training iterations on one random batch; rows against ``schemes[0]``.
    """
    steps = []
    task = None
    for scheme in schemes:
        config = model_config_path(configs_dir, model, scheme)
        log(f'building {model} / {scheme} from {config}')
        torch.manual_seed(0)
        net, optim_wrapper, task = build_train_model(config, size, device)
        data = random_batch(task, batch, size)
        steps.append(train_iteration(net, optim_wrapper, data))

    def progress(r: int, secs: List[float]) -> None:
        parts = ', '.join(f'{s} {t * 1e3:.0f} ms'
                          for s, t in zip(schemes, secs))
        log(f'  {model} N={batch} {size}x{size} round {r + 1}/{repeats}: '
            f'{parts}')

    log(f'warm-up ({warmup} iteration(s) per scheme)')
    times = time_rounds(steps, repeats, warmup=warmup, device=device,
                        check=finite_loss, progress=progress)
    return summarize(model, batch, size, schemes, times)
