"""Every shipped config builds what it says, with any OpenMMLab tool.

- For every config in configs/: the model ``Config.fromfile`` reads (what
  mmdet's / mmseg's own tools build) is the base's model with the config's
  scheme applied by :func:`mmbcn.schemes.apply_scheme`, and
  ``mmbcn.apis.load_config`` leaves it as it is. Comparing the config dicts
  is exact and fast (the same dict builds the same modules); for a few
  configs the two builds are compared module by module as well, and their
  layers counted.
- A child config's ``norm_cfg`` edit is what gets built.
- A ``norm_scheme`` label that disagrees with the layers, and a
  command-line edit that contradicts ``--norm``, are one clear error.
"""
import copy
import functools
import glob
import logging
import os.path as osp
import re
from collections import Counter

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from mmbcn import BCN, WSConv2d, apis
from mmbcn.models.layers import StatsMode
from mmbcn.schemes import apply_scheme, get_scheme
from mmbcn.scope import registry
from repo import REPO

CONFIG_DIR = osp.join(REPO, 'configs')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_DIR)
    for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, CONFIG_DIR).split(osp.sep)
    # the Swin-T configs have no scheme of the table (LayerNorm / PRepBN):
    # tests/test_swin_configs.py builds and trains them
    and not osp.relpath(p, CONFIG_DIR).startswith('swin' + osp.sep))
BCN_WS_COCO = 'mask_rcnn/mask-rcnn_r50_fpn_bcn-ws-all_2x_coco.py'


@pytest.fixture(autouse=True, scope='module')
def fast_config_loading():
    """Parse each metafile.yml of mmdet / mmseg once (mmengine re-reads them
    for every ``mmdet::`` base)."""
    from mmengine.config import utils
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, 'load',
                      functools.lru_cache(maxsize=None)(utils.load))
        yield


@functools.lru_cache(maxsize=None)
def _read(path):
    return Config.fromfile(path)


def read(path):
    return copy.deepcopy(_read(path))


def base_of(config):
    with open(osp.join(CONFIG_DIR, config), encoding='utf-8') as f:
        base = re.search(r"^_base_ = '([^']+)'", f.read(), re.M)[1]
    return osp.normpath(osp.join(CONFIG_DIR, osp.dirname(config), base))


def test_every_config_found():
    assert len(CONFIGS) >= 128, CONFIGS


#: what a fine-tuning leaf sets besides its scheme's layers
FINETUNE_KEYS = (('backbone', 'init_cfg'), ('backbone', 'norm_eval'),
                 ('data_preprocessor', 'mean'), ('data_preprocessor', 'std'),
                 ('data_preprocessor', 'bgr_to_rgb'))


@pytest.mark.parametrize('config', CONFIGS)
def test_config_writes_its_scheme(config):
    stock = read(osp.join(CONFIG_DIR, config))
    label = stock.norm_scheme
    base = read(base_of(config))
    expected = apply_scheme(base.model.to_dict(), label, base.default_scope)
    model = stock.model.to_dict()
    if config.startswith(('finetune', 'shapes/finetune')):
        # ImageNet weights (converted) or the built-in pretraining's
        assert model['backbone']['init_cfg']['type'] == (
            'ConvertedPretrained' if config.startswith('finetune') else
            'Pretrained')
        for outer, inner in FINETUNE_KEYS:
            if inner in model[outer]:
                expected[outer][inner] = model[outer][inner]
    if config.startswith('pretrain') and '-mb' in config:
        expected['micro_batch'] = model['micro_batch']  # BN of chunks
    assert model == expected
    ours = apis.load_config(stock)
    assert ours.model.to_dict() == stock.model.to_dict()
    # the leaf shows its layers: the scheme's norm_cfg / conv_cfg variables
    scheme = get_scheme(label)

    def written(key):  # mmengine adds _scope_ to an mmseg:: base's dicts
        value = stock.get(key)
        return value and {k: v for k, v in value.items() if k != '_scope_'}

    assert written('norm_cfg') == scheme.norm_cfg
    assert written('conv_cfg') == scheme.conv_cfg


def layers(model):
    """Every module: (name, class, arguments)."""
    return [(name, type(m).__qualname__, m.extra_repr())
            for name, m in model.named_modules()]


def counts(model):
    found = Counter()
    for m in model.modules():
        if isinstance(m, StatsMode):
            continue  # the norm_eval switch inside BCN / EvoNorm-B0
        if isinstance(m, WSConv2d):
            found['ws'] += 1
        elif isinstance(m, torch.nn.Conv2d):
            found['conv'] += 1
        if isinstance(m, BCN):
            found['bcn'] += 1
            assert m.num_groups == 32
        elif isinstance(m, (torch.nn.GroupNorm, _BatchNorm)):
            found['other norm'] += 1
    return found


def stock_build(path):
    """As mmdet's / mmseg's tools build a config (``custom_imports`` is
    imported by Config.fromfile)."""
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return registry(cfg.default_scope, 'MODELS').build(cfg.model)


@pytest.mark.parametrize('config, expected', [
    # 53 backbone + 8 FPN + 4 box-head + 4 mask-head convs standardized and
    # normalized; RPN (3) and mask logits (1) plain
    (BCN_WS_COCO, dict(ws=69, conv=4, bcn=69)),
    # ResNetV1c-50-D8, ASPP and FCN heads; the two classifiers plain
    ('deeplabv3/deeplabv3_r50-d8_bcn-ws_4xb1-20k_voc12aug-512x512.py',
     dict(ws=62, conv=2, bcn=62)),
    ('shapes/mask-rcnn_r18_fpn_bcn-ws-all_1xb2-300i_shapes.py', None),
    ('shapes/deeplabv3_r18-d8_gn_1xb2-1000i_shapes.py', None),
])
def test_stock_and_mmbcn_builds_agree(config, expected):
    path = osp.join(CONFIG_DIR, config)
    torch.manual_seed(0)
    stock = stock_build(path)
    ours = apis.build_model(apis.load_config(path))
    assert layers(stock) == layers(ours)
    if expected is not None:
        assert counts(stock) == Counter(expected)
    scheme = get_scheme(Config.fromfile(path).norm_scheme)
    norm_type = {'BCN': BCN, 'GN': torch.nn.GroupNorm}[
        scheme.norm_cfg['type']]
    assert any(isinstance(m, norm_type) for m in stock.modules())
    assert not any(isinstance(m, _BatchNorm) and not isinstance(m, StatsMode)
                   for m in stock.modules())


def child(tmp_path, body, name='child.py'):
    path = tmp_path / name
    path.write_text(f"_base_ = '{osp.join(CONFIG_DIR, BCN_WS_COCO)}'\n"
                    + body)
    return str(path)


def test_child_config_edit_survives(tmp_path):
    path = child(tmp_path, (
        'model = dict(backbone=dict(norm_cfg=dict(type=\'BCN\', '
        'num_groups=16, requires_grad=True)))\n'))
    cfg = apis.load_config(path)
    assert cfg.model.backbone.norm_cfg.num_groups == 16
    assert cfg.model.neck.norm_cfg.num_groups == 32
    assert cfg.model.to_dict() == Config.fromfile(path).model.to_dict()
    init_default_scope('mmdet')
    backbone = registry('mmdet', 'MODELS').build(cfg.model.backbone)
    groups = {m.num_groups for m in backbone.modules() if isinstance(m, BCN)}
    assert groups == {16}


def test_label_conflict_is_reported(tmp_path):
    path = child(tmp_path, (
        'model = dict(backbone=dict(norm_cfg=dict(type=\'GN\', '
        'num_groups=32, requires_grad=True)))\n'))
    Config.fromfile(path)  # other tools ignore the label
    with pytest.raises(ValueError) as error:
        apis.load_config(path)
    message = str(error.value)
    assert 'child.py' in message
    assert "norm_scheme='bcn-ws' does not describe the model" in message
    assert "model.backbone.norm_cfg is type='GN', 'bcn-ws' has " \
        "type='BCN' (mode='micro')" in message
    assert 'model.neck' not in message  # only what disagrees
    # the label fixed: the mixed network is what gets built
    fixed = child(tmp_path, (
        'norm_scheme = None\nmodel = dict(backbone=dict(norm_cfg=dict('
        "type='GN', num_groups=32, requires_grad=True)))\n"), 'fixed.py')
    assert apis.load_config(fixed).model.backbone.norm_cfg.type == 'GN'


def test_label_conflict_names_the_matching_scheme(tmp_path):
    path = child(tmp_path, "norm_scheme = 'gn-ws'\n")
    with pytest.raises(ValueError, match=r"the layers are those of "
                       r"'bcn-ws'; set norm_scheme"):
        apis.load_config(path)
    # BCN's mode tells the micro-batch and the large-batch schemes apart
    path = child(tmp_path, "norm_scheme = 'bcn-ws-large'\n", 'large.py')
    with pytest.raises(ValueError, match=r"model\.backbone\.norm_cfg is "
                       r"type='BCN' \(mode='micro'\), 'bcn-ws-large' has "
                       r"type='BCN' \(mode='large'\)"):
        apis.load_config(path)


class Collect(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_norm_rewrites_any_config_and_says_so():
    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        cfg = apis.load_config(osp.join(CONFIG_DIR, BCN_WS_COCO), norm='gn')
    finally:
        logger.removeHandler(handler)
    for module in (cfg.model.backbone, cfg.model.neck,
                   cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head):
        assert module.norm_cfg.type == 'GN' and module.conv_cfg is None
    assert cfg.norm_scheme == 'gn' and cfg.norm_cfg.type == 'GN'
    assert 'BCN' not in cfg.pretty_text
    log = '\n'.join(handler.messages)
    assert '--norm gn: rewrote norm_cfg / conv_cfg of 4 modules' in log
    assert 'model.roi_head.bbox_head' in log
    assert "norm_scheme='bcn-ws'" in log


def test_norm_rewrites_a_plain_mmseg_config(tmp_path):
    path = tmp_path / 'plain.py'
    path.write_text("_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_"
                    "voc12aug-512x512.py'\n")
    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        cfg = apis.load_config(str(path), norm='bcn-ws-large')
    finally:
        logger.removeHandler(handler)
    for module in ('backbone', 'decode_head', 'auxiliary_head'):
        assert cfg.model[module].norm_cfg.mode == 'large'
        assert cfg.model[module].conv_cfg.type == 'WSConv2d'
    assert cfg.norm_scheme == 'bcn-ws-large'
    assert cfg.norm_cfg.type == 'BCN'  # mmseg's top-level variable too
    assert any(m.startswith('--norm bcn-ws-large: rewrote norm_cfg / '
                            'conv_cfg of 3 modules') and 'says' not in m
               for m in handler.messages), handler.messages


def test_command_line_conflict_is_reported():
    path = osp.join(CONFIG_DIR, BCN_WS_COCO)
    with pytest.raises(ValueError, match=r"norm_scheme='gn' does not "
                       r"describe the model: model\.neck\.norm_cfg is "
                       r"type='BCN' \(mode='micro'\), 'gn' has type='GN'"):
        apis.load_config(path, norm='gn', cfg_options={
            'model.neck.norm_cfg.type': 'BCN'})
    # editing the arguments of --norm's layers is no conflict
    cfg = apis.load_config(path, norm='gn', cfg_options={
        'model.neck.norm_cfg.num_groups': 16})
    assert cfg.model.neck.norm_cfg == dict(type='GN', num_groups=16,
                                           requires_grad=True)


def test_finetune_docs_list_every_config():
    """docs/finetune.md has a row per fine-tuning config with the weights
    its init_cfg loads."""
    with open(osp.join(REPO, 'docs', 'finetune.md'), encoding='utf-8') as f:
        rows = {line.split('|')[1].strip().strip('`'): line
                for line in f if line.startswith('| `')}
    finetune = [c for c in CONFIGS if c.startswith('finetune/')]
    assert finetune
    for config in finetune:
        name = osp.basename(config)
        assert name in rows, f'{name} is not in docs/finetune.md'
        init = read(osp.join(CONFIG_DIR, config)).model.backbone.init_cfg
        assert f"`{init.checkpoint}` (`{init.source}`)" in rows[name]
        assert rows[name].rstrip().endswith('| not run yet |')
