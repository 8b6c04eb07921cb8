"""Every config in configs/ (except configs/_base_) loads, builds and trains.

For each config file:

- ``Config.fromfile`` loads it and ``apply_config_scheme`` checks its
  ``norm_scheme`` label against the layers it writes out; it loads mmbcn
  through ``custom_imports``;
- conventions: ``auto_scale_lr.base_batch_size`` is the GPUs x images per GPU
  of its name (mmdet's default 8 x 2 when the name has no ``NxbM``) and
  ``train_dataloader.batch_size`` the images per GPU; configs sharing a base
  use the same lr per image; COCO / VOC / Cityscapes configs train from
  scratch, except those of configs/finetune/ (ImageNet weights through
  ``ConvertedPretrained``); the shapes configs read ``data/shapes/`` by
  default;
- with its dataset root pointed at a tiny shapes dataset laid out like the
  real one (COCO json + image folders, VOC ``JPEGImages`` /
  ``SegmentationClass[Aug]`` / ``ImageSets``, Cityscapes ``leftImg8bit`` /
  ``gtFine``) and its image scales / crops shrunk to 64 px: its model and its
  train dataset build, a sample goes through its train pipeline and its
  optimizer wrapper builds;
- one training iteration (forward, backward, optimizer step) through
  ``Runner.from_cfg`` with ``max_iters=1`` and the config's own samplers,
  ``model.train_cfg`` and optimizer, at 1 image per GPU. To keep the file
  fast, that iteration runs once per distinct model: configs whose model
  config (after the scheme) is identical -- they differ only in schedule,
  batch size, lr or dataset paths -- share the iteration of the first of
  them (in file order), so e.g. ``mask-rcnn_r101_fpn_gn-all_2x_coco.py`` and
  ``..._8xb1-1x_coco.py`` reuse the iteration of ``..._1x_coco.py``.

SyncBN configs run without a process group: mmengine's Runner reverts SyncBN
to BN itself when not distributed. DeepLabV3 with BN / SyncBN is stepped at
2 images: ASPP's image-pooling branch gives BN one value per channel at 1
image (see ``test_deeplabv3_bn_cannot_train_one_image_per_gpu``).

Torch runs single-threaded here (much faster on a loaded 2-core machine).
"""
import copy
import functools
import glob
import importlib.util
import json
import math
import os.path as osp
import re
import shutil

import cv2
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmbcn.datasets import SHAPES_CLASSES, generate_shapes
from mmbcn.schemes import apply_config_scheme, get_scheme
from repo import REPO

CONFIG_DIR = osp.join(REPO, 'configs')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_DIR)
    for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, CONFIG_DIR).split(osp.sep)
    # the Swin-T configs have no scheme of the table (LayerNorm / PRepBN):
    # tests/test_swin_configs.py builds and trains them; the backbone
    # pretraining and the fine-tuning from it on the shapes data (the
    # papers' protocol): tests/test_protocol_configs.py
    and not osp.relpath(p, CONFIG_DIR).startswith(
        ('swin' + osp.sep, 'pretrain' + osp.sep,
         osp.join('shapes', 'finetune') + osp.sep)))
SIZE = 64  # side of the test images and of every train scale / crop

# the default data_root of each dataset the configs use -> fake_data key
DATA_ROOTS = {
    'data/coco': 'coco',
    'data/VOCdevkit/VOC2012': 'voc',
    'data/cityscapes': 'cityscapes',
    'data/shapes': 'shapes',
}


def test_configs_found():
    families = {osp.dirname(c) for c in CONFIGS}
    assert {'mask_rcnn', 'deeplabv3', 'shapes'} <= families, CONFIGS


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope='module')
def fast_config_loading():
    """mmengine resolves a ``mmdet::<dir>/<config>.py`` base by parsing
    every metafile.yml of the package (~0.5 s per base, every time); read
    each of those files once in this module."""
    from mmengine.config import utils
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, 'load',
                      functools.lru_cache(maxsize=None)(utils.load))
        yield


# --------------------------------------------------------------------------
# data: a tiny shapes dataset, also laid out as COCO, VOC aug and Cityscapes
# --------------------------------------------------------------------------
@pytest.fixture(scope='session')
def fake_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('config_data')
    shapes = root / 'shapes'
    generate_shapes(shapes, num_train=4, num_val=2, img_size=SIZE, seed=0,
                    progress=False)
    splits = {
        split: sorted(p.stem for p in (shapes / 'images' / split).iterdir())
        for split in ('train', 'val')
    }

    coco = root / 'coco'
    (coco / 'annotations').mkdir(parents=True)
    for split in splits:
        shutil.copy(shapes / 'annotations' / f'instances_{split}.json',
                    coco / 'annotations' / f'instances_{split}2017.json')
        shutil.copytree(shapes / 'images' / split, coco / f'{split}2017')

    voc = root / 'VOCdevkit' / 'VOC2012'
    sets = voc / 'ImageSets' / 'Segmentation'
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug'):
        (voc / sub).mkdir(parents=True)
    sets.mkdir(parents=True)
    for split, names in splits.items():
        ids = [f'{split}_{name}' for name in names]
        for name, id_ in zip(names, ids):
            image = cv2.imread(str(shapes / 'images' / split / f'{name}.png'))
            cv2.imwrite(str(voc / 'JPEGImages' / f'{id_}.jpg'), image)
            for sub in ('SegmentationClass', 'SegmentationClassAug'):
                shutil.copy(shapes / 'seg_maps' / split / f'{name}.png',
                            voc / sub / f'{id_}.png')
        (sets / f'{split}.txt').write_text('\n'.join(ids) + '\n')
        if split == 'train':
            (sets / 'aug.txt').write_text('\n'.join(ids) + '\n')

    cityscapes = root / 'cityscapes'
    for split, names in splits.items():
        img_dir = cityscapes / 'leftImg8bit' / split / 'shapesville'
        seg_dir = cityscapes / 'gtFine' / split / 'shapesville'
        img_dir.mkdir(parents=True)
        seg_dir.mkdir(parents=True)
        for name in names:
            stem = f'shapesville_000000_{name}'
            shutil.copy(shapes / 'images' / split / f'{name}.png',
                        img_dir / f'{stem}_leftImg8bit.png')
            shutil.copy(shapes / 'seg_maps' / split / f'{name}.png',
                        seg_dir / f'{stem}_gtFine_labelTrainIds.png')

    return dict(coco=coco, voc=voc, cityscapes=cityscapes, shapes=shapes)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _load(config):
    return Config.fromfile(osp.join(CONFIG_DIR, config))


def load(config):
    """The config with its scheme applied (a fresh copy each call)."""
    return apply_config_scheme(copy.deepcopy(_load(config)))


def registries(scope):
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import DATASETS, MODELS
    else:
        from mmseg.registry import DATASETS, MODELS
    return MODELS, DATASETS


def datasets_in(cfg):
    """Every dataset config (with a data_root) inside a dataset config."""
    if 'data_root' in cfg:
        yield cfg
    for key in ('dataset', 'datasets'):
        sub = cfg.get(key)
        for item in sub if isinstance(sub, list) else [sub] if sub else []:
            yield from datasets_in(item)


def shrink(transforms):
    for t in transforms:
        if 'scale' in t:
            t['scale'] = (SIZE, SIZE)
        if 'crop_size' in t:
            t['crop_size'] = (SIZE, SIZE)
        if t['type'] == 'Pad' and 'size' in t:
            t['size'] = (SIZE, SIZE)


def adapt(cfg, data, work_dir, batch_size=1):
    """Point ``cfg`` at the fake data, shrink it, make it train 1 iter."""
    loader = cfg.train_dataloader
    loader.update(batch_size=batch_size, num_workers=0,
                  persistent_workers=False)
    for dataset in datasets_in(loader.dataset):
        root = dataset['data_root'].rstrip('/')
        assert root in DATA_ROOTS, f'unexpected data_root {root!r}'
        dataset['data_root'] = str(data[DATA_ROOTS[root]])
        if DATA_ROOTS[root] == 'coco':  # the shapes classes in COCO format
            dataset['metainfo'] = dict(classes=SHAPES_CLASSES)
        shrink(dataset.get('pipeline', []))
    if cfg.model.get('data_preprocessor', {}).get('size'):
        cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.train_cfg = ConfigDict(type='IterBasedTrainLoop', max_iters=1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer_{work_dir.name}'
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


def names_batch(config):
    """(GPUs, images per GPU) from the name; mmdet's default is 8 x 2."""
    match = re.search(r'_(\d+)xb(\d+)-', osp.basename(config))
    return (int(match[1]), int(match[2])) if match else (8, 2)


def bn_on_pooled_features(cfg):
    """DeepLabV3's ASPP pools to 1x1; BN (and Batch Renormalization and
    Cross-Iteration BN, which refuse one value per channel as BN does)
    needs 2 images to train it."""
    scheme = get_scheme(cfg.norm_scheme)
    batch_stats = scheme.norm_cfg['type'] in (
        'BN', 'SyncBN', 'BatchRenorm', 'CrossIterationBN') or \
        scheme.norm_cfg.get('mode') == 'large'  # BCN's batch stage as BN
    return cfg.default_scope == 'mmseg' and batch_stats


#: model config (after the scheme) -> the config whose iteration covered it
TRAINED = {}


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
@pytest.mark.parametrize('config', CONFIGS)
def test_config_conventions(config):
    cfg = load(config)
    assert cfg.get('norm_scheme') is not None, 'no norm_scheme'
    # mmbcn's layers, and the shapes dataset of the config's toolbox
    shapes = {'mmdet': ['mmbcn.datasets.shapes_det'],
              'mmseg': ['mmbcn.datasets.shapes_seg']}[cfg.default_scope]
    assert cfg.custom_imports == dict(
        imports=['mmbcn'] + (shapes if config.startswith('shapes/') else []),
        allow_failed_imports=False)
    # paramwise_cfg's norm rules reach mmbcn's norms, for every scheme
    assert cfg.optim_wrapper.constructor == 'NormAwareOptimWrapperConstructor'
    gpus, per_gpu = names_batch(config)
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu
    assert cfg.auto_scale_lr.enable is False
    assert cfg.train_dataloader.batch_size == per_gpu
    backbone = cfg.model.backbone
    assert cfg.model.get('pretrained') is None
    if config.startswith('finetune'):  # ImageNet weights of its layers
        assert backbone.init_cfg.type == 'ConvertedPretrained'
    else:
        assert backbone.get('init_cfg') is None, 'not trained from scratch'
        assert backbone.norm_eval is False
        assert backbone.frozen_stages == -1
    if config.startswith('shapes'):
        for split in ('train', 'val', 'test'):
            dataset = cfg[f'{split}_dataloader'].dataset
            assert dataset.data_root == 'data/shapes/'
        if cfg.val_evaluator.type == 'CocoMetric':
            assert cfg.val_evaluator.ann_file.startswith('data/shapes/')
        assert cfg.train_cfg.type == 'IterBasedTrainLoop'


def lr_per_image(config):
    cfg = load(config)
    return cfg.optim_wrapper.optimizer.lr / cfg.auto_scale_lr.base_batch_size


def test_lr_follows_batch():
    """Configs of one base family use the same lr per image."""
    by_base = {}
    for config in CONFIGS:
        with open(osp.join(CONFIG_DIR, config), encoding='utf-8') as f:
            base = re.search(r"_base_ = '([^']+)'", f.read())[1]
        by_base.setdefault(base, []).append(config)
    for base, configs in by_base.items():
        # one 2-images and one 1-image config of the family suffice
        picked = {names_batch(c)[1]: c for c in configs}.values()
        rates = {c: lr_per_image(c) for c in picked}
        assert len({round(r, 12) for r in rates.values()}) == 1, rates


def test_generated_configs_up_to_date():
    spec = importlib.util.spec_from_file_location(
        'generate_configs', osp.join(REPO, 'tools', 'misc',
                                     'generate_configs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(['--check']) == 0


#: One iteration for these fine-tuning configs; the others differ from
#: them or from the scratch configs only in the ImageNet weights (loaded in
#: tests/test_converters/test_initializer.py), frozen stages and input
#: normalization.
FINETUNE_TRAINED = (
    'finetune/mask-rcnn_r50-in1k_fpn_bcn-ws-all_2x_coco.py',
    'finetune/deeplabv3_r101-in1k-d8_bcn-ws-large_4xb4-33k_'
    'voc12aug-513x513.py')
TRAIN_CONFIGS = [c for c in CONFIGS if not c.startswith('finetune')] + \
    list(FINETUNE_TRAINED)


@pytest.mark.parametrize('config', TRAIN_CONFIGS)
def test_config_builds_and_trains(config, fake_data, tmp_path):
    cfg = load(config)
    cfg.model.backbone.init_cfg = None  # no ImageNet weights here
    batch = 2 if bn_on_pooled_features(cfg) else 1
    cfg = adapt(cfg, fake_data, tmp_path, batch_size=batch)
    models, datasets = registries(cfg.default_scope)

    dataset = datasets.build(copy.deepcopy(cfg.train_dataloader.dataset))
    assert len(dataset) > 0
    sample = dataset[0]
    assert max(sample['inputs'].shape[-2:]) <= 2 * SIZE  # shrunk

    key = (cfg.default_scope, batch,
           json.dumps(cfg.model.to_dict(), sort_keys=True, default=repr))
    if key in TRAINED:
        # the same model already trained one iteration in this session:
        # build this config's model and optimizer only
        model = models.build(copy.deepcopy(cfg.model))
        build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        return

    runner = Runner.from_cfg(cfg)
    # not distributed: mmengine has reverted SyncBN to BN
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in runner.model.modules())
    runner.train()
    assert runner.iter == 1
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), f'loss {loss}'
    TRAINED[key] = config


def test_deeplabv3_bn_cannot_train_one_image_per_gpu(fake_data, tmp_path):
    """Plain BN at 1 image per GPU fails in DeepLabV3 itself (not in mmbcn):
    the ASPP head's image-pooling branch normalizes a 1x1 map, one value
    per channel. The bn 4xb1 configs document that failure; syncbn ones
    need more than one GPU."""
    config = 'deeplabv3/deeplabv3_r50-d8_bn_4xb1-20k_voc12aug-512x512.py'
    cfg = adapt(load(config), fake_data, tmp_path, batch_size=1)
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        Runner.from_cfg(cfg).train()
