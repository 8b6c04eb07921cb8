"""ConvertedPretrained: every fine-tuning config loads ImageNet weights of
its source's layout and computes what the source network computed.

For each distinct backbone of configs/finetune/ (the 2x and 20-23-24e
recipes share theirs) a synthetic checkpoint in the source's documented
layout is written (torchvision BN, Detectron GN, mmdet GN+WS, the BCN
authors' BCN+WS; every weight and statistic random, fc included); the
config's backbone, built at full size with its ``init_cfg`` pointed at that
file, initializes itself through mmengine (``init_weights``), must report
no missing or unexpected key, and its eval-mode stage outputs must equal a
plain float64 re-implementation of the source network from the formulas
(the source's WS semantics and norms; the conv geometry -- strides,
dilations -- is read from the built backbone, it is mmdet's / mmseg's).
"""
import copy
import functools
import glob
import json
import logging
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmbcn.converters import ConvertedPretrained
from mmbcn.models.layers import is_norm_layer
from mmbcn.scope import registry
from repo import REPO

EPS = 1e-5
FINETUNE = sorted(glob.glob(osp.join(REPO, 'configs', 'finetune', '*.py')))
COCO = osp.join(REPO, 'configs', 'finetune',
                'mask-rcnn_r50-in1k_fpn_{}_2x_coco.py')


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """One torch thread: much faster on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope='module')
def fast_config_loading():
    from mmengine.config import utils
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, 'load',
                      functools.lru_cache(maxsize=None)(utils.load))
        yield


def test_finetune_configs_found():
    names = [osp.basename(p) for p in FINETUNE]
    assert len(names) == 33, names  # 32 recipes + the CBN paper's 1x
    assert any('bcn-ws-large' in n for n in names)


# --------------------------------------------------------------------------
# the source layouts
# --------------------------------------------------------------------------
def source_name(target_norm, source):
    """The source's name of a target norm module."""
    if source == 'bcn-ws':
        return re.sub(r'(^|\.)bcn(\d+)$', r'\1bn\2', target_norm)
    return target_norm


def make_source(backbone, source, groups=32, seed=0):
    """A checkpoint in ``source``'s layout for the ResNet ``backbone``."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    sd = {}
    channels = 0
    for name, m in backbone.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            cout = m.weight.shape[0]
            fan_in = m.weight[0].numel()
            scale = (0.3 + 0.9 * rand(cout, 1, 1, 1)) / fan_in ** 0.5
            w = torch.randn(m.weight.shape, generator=gen) * scale
            sd[f'{name}.weight'] = w + 0.3 * scale * torch.randn(
                cout, 1, 1, 1, generator=gen)
            channels = cout
        elif name and is_norm_layer(m) and m.weight is not None and \
                m.weight.dim() == 1:
            c = m.num_features if hasattr(m, 'num_features') else \
                m.num_channels
            key = source_name(name, source)
            if source == 'bcn-ws':
                sd[f'{key}.weight'] = 0.5 + rand(1, groups, 1)
                sd[f'{key}.bias'] = 0.2 * torch.randn(1, groups, 1,
                                                      generator=gen)
                sd[f'{key}.pbn.weight'] = 0.5 + rand(c)
                sd[f'{key}.pbn.bias'] = 0.2 * torch.randn(c, generator=gen)
                sd[f'{key}.pbn.running_mean'] = 0.2 * torch.randn(
                    c, generator=gen)
                sd[f'{key}.pbn.running_var'] = 0.5 + rand(c)
                sd[f'{key}.pbn.num_batches_tracked'] = torch.tensor(5000)
            else:
                # the last norm of a block small, so that the residual sums
                # of 33 blocks stay of the order of 1 (BN in eval mode does
                # not normalize)
                last = re.search(r'(bn|gn)3$', key) is not None
                sd[f'{key}.weight'] = (0.1 + 0.2 * rand(c)) if last else \
                    (0.5 + rand(c))
                sd[f'{key}.bias'] = 0.2 * torch.randn(c, generator=gen)
                if source == 'torchvision':
                    sd[f'{key}.running_mean'] = 0.2 * torch.randn(
                        c, generator=gen)
                    sd[f'{key}.running_var'] = 0.5 + rand(c)
                    sd[f'{key}.num_batches_tracked'] = torch.tensor(5000)
    sd['fc.weight'] = torch.randn(10, channels, generator=gen)
    sd['fc.bias'] = torch.randn(10, generator=gen)
    return sd


# --------------------------------------------------------------------------
# the source networks, from the formulas (float64)
# --------------------------------------------------------------------------
def standardize(w, semantics):
    flat = w.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    if semantics == 'var-unbiased':   # the BCN authors' ImageNet code
        denom = (flat.var(1, unbiased=True) + EPS).sqrt()
    else:                             # mmcv ConvWS: unbiased std + eps
        denom = flat.std(1, unbiased=True) + EPS
    return (w - mean) / denom.view(-1, 1, 1, 1)


def group_standardize(x, groups):
    xg = x.reshape(x.shape[0], groups, -1)
    mean = xg.mean(-1, keepdim=True)
    var = (xg - mean).pow(2).mean(-1, keepdim=True)
    return (xg - mean) / (var + EPS).sqrt()


def batch_norm(x, sd, key):
    shape = (1, -1, 1, 1)
    return (x - sd[f'{key}.running_mean'].view(shape)) / (
        sd[f'{key}.running_var'].view(shape) + EPS).sqrt() * \
        sd[f'{key}.weight'].view(shape) + sd[f'{key}.bias'].view(shape)


def norm_reference(x, sd, key, source, groups):
    if source == 'torchvision':
        return batch_norm(x, sd, key)
    if source == 'bcn-ws':
        x1 = batch_norm(x, sd, f'{key}.pbn')
        groups = sd[f'{key}.weight'].shape[1]
        y = group_standardize(x1, groups)
        return (sd[f'{key}.weight'] * y + sd[f'{key}.bias']).reshape(x.shape)
    y = group_standardize(x, groups).reshape(x.shape)
    shape = (1, -1, 1, 1)
    return y * sd[f'{key}.weight'].view(shape) + sd[f'{key}.bias'].view(shape)


def reference_features(sd, backbone, x, source, groups=32):
    """The source ResNet's four stage outputs; conv geometry from the
    built ``backbone`` (its modules of the same names)."""
    sd = {k: v.double() for k, v in sd.items()}
    modules = dict(backbone.named_modules())
    ws = {'bcn-ws': 'var-unbiased', 'gn-ws': 'std'}.get(source)
    abbr = {'torchvision': 'bn', 'bcn-ws': 'bn'}.get(source, 'gn')

    def conv(x, name):
        w = sd[f'{name}.weight']
        if ws:
            w = standardize(w, ws)
        m = modules[name]
        return F.conv2d(x, w, stride=m.stride, padding=m.padding,
                        dilation=m.dilation)

    def norm(x, name):
        return norm_reference(x, sd, name, source, groups)

    x = F.relu(norm(conv(x.double(), 'conv1'), f'{abbr}1'))
    x = F.max_pool2d(x, 3, 2, 1)
    feats = []
    for k in range(1, 5):
        i = 0
        while f'layer{k}.{i}.conv1.weight' in sd:
            p = f'layer{k}.{i}.'
            out = F.relu(norm(conv(x, p + 'conv1'), p + f'{abbr}1'))
            out = F.relu(norm(conv(out, p + 'conv2'), p + f'{abbr}2'))
            out = norm(conv(out, p + 'conv3'), p + f'{abbr}3')
            if f'{p}downsample.0.weight' in sd:
                x = norm(conv(x, p + 'downsample.0'), p + 'downsample.1')
            x = F.relu(out + x)
            i += 1
        feats.append(x)
    return feats


# --------------------------------------------------------------------------
# building the configs' backbones
# --------------------------------------------------------------------------
def backbone_config(path):
    cfg = Config.fromfile(path)
    return cfg.default_scope, cfg.model.backbone.to_dict()


def build(scope, backbone_cfg):
    init_default_scope(scope)
    return registry(scope, 'MODELS').build(copy.deepcopy(backbone_cfg))


class Collect(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def distinct_backbones():
    seen = {}
    for path in FINETUNE:
        scope, cfg = backbone_config(path)
        key = json.dumps([scope, cfg], sort_keys=True, default=repr)
        seen.setdefault(key, osp.basename(path))
    return sorted(seen.values())


def narrow(cfg, width=8, groups=4):
    """The backbone at 1/8 of the width (stem and base channels 8, norms
    of 4 groups): the same depth, geometry, layers and key names."""
    cfg = dict(cfg, stem_channels=width, base_channels=width)
    if 'num_groups' in cfg['norm_cfg']:
        cfg['norm_cfg'] = dict(cfg['norm_cfg'], num_groups=groups)
    return cfg


def check_loads_and_reproduces(scope, cfg, tmp_path, size):
    """Build ``cfg`` with its init_cfg pointed at a synthetic checkpoint of
    its source, initialize it through mmengine and compare its eval-mode
    stage outputs with the source network's (float32, to 1e-4 of each
    stage's largest feature)."""
    init = cfg['init_cfg']
    assert init['type'] == 'ConvertedPretrained'
    source = init['source']
    groups = cfg['norm_cfg'].get('num_groups', 32)
    torch.manual_seed(0)
    scratch = build(scope, dict(cfg, init_cfg=None))
    sd = make_source(scratch, source, groups)
    del scratch
    ckpt = tmp_path / 'imagenet.pth'
    torch.save({'state_dict': sd}, str(ckpt))

    backbone = build(scope, dict(cfg, init_cfg=dict(init,
                                                    checkpoint=str(ckpt))))
    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        backbone.init_weights()
    finally:
        logger.removeHandler(handler)
    report = [m for m in handler.messages
              if m.startswith('ConvertedPretrained:')]
    assert len(report) == 1, handler.messages
    assert 'missing keys: none; unexpected keys: none' in report[0], report

    x = torch.randn(1, 3, size, size,
                    generator=torch.Generator().manual_seed(1))
    refs = reference_features(sd, backbone, x, source, groups)
    backbone.eval()
    with torch.no_grad():
        outs = backbone(x)
    assert len(outs) == len(refs) == 4
    for out, ref in zip(outs, refs):
        assert out.dtype == torch.float32 and out.shape == ref.shape
        scale = ref.abs().max().item()
        assert 0.1 < scale < 1e8  # neither vanished nor overflowing
        assert (out.double() - ref).abs().max().item() <= 1e-4 * scale


@pytest.mark.parametrize('config', distinct_backbones())
def test_finetune_config_loads_and_reproduces_source(config, tmp_path):
    """Every fine-tuning backbone, at 1/8 of its width."""
    scope, cfg = backbone_config(osp.join(REPO, 'configs', 'finetune',
                                          config))
    check_loads_and_reproduces(scope, narrow(cfg), tmp_path, 32)


def test_full_size_backbone_loads_and_reproduces_source(tmp_path):
    """One backbone as the config builds it (ResNet-50, 64 to 2048
    channels; torchvision's layout, which needs no WS conversion, keeps it
    fast)."""
    scope, cfg = backbone_config(COCO.format('bn'))
    check_loads_and_reproduces(scope, cfg, tmp_path, 32)


# --------------------------------------------------------------------------
# wrong layouts and schemes
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """One R-50 ImageNet checkpoint per source layout."""
    root = tmp_path_factory.mktemp('imagenet')
    files = {}
    for scheme, source in (('bn', 'torchvision'), ('gn-all', 'detectron-gn'),
                           ('bcn-ws-all', 'bcn-ws')):
        scope, cfg = backbone_config(COCO.format(scheme))
        net = build(scope, dict(narrow(cfg), init_cfg=None))
        files[source] = str(root / f'{source}.pth')
        torch.save(make_source(net, source, groups=4), files[source])
    return files


def init_with(scheme, checkpoint):
    scope, cfg = backbone_config(COCO.format(scheme))
    backbone = build(scope, dict(narrow(cfg), init_cfg=None))
    init = ConvertedPretrained(checkpoint=checkpoint,
                               source=cfg['init_cfg']['source'])
    return init, backbone


@pytest.mark.parametrize('scheme, given, expected, found', [
    # a BN checkpoint for the BCN+WS backbone
    ('bcn-ws-all', 'torchvision', "the BCN authors' ImageNet BCN+WS ResNet",
     'a torchvision BatchNorm ResNet layout'),
    # the authors' BCN checkpoint for the BN backbone
    ('bn', 'bcn-ws', "torchvision's BatchNorm ImageNet ResNet",
     "the BCN authors' ImageNet BCN+WS ResNet layout"),
    # a GN checkpoint for the GN+WS backbone: same names, the converter
    # accepts it (GN and GN+WS ImageNet nets share a layout), so: BN for GN
    ('gn-all', 'torchvision', "Detectron's GN ImageNet ResNet",
     'a torchvision BatchNorm ResNet layout'),
])
def test_wrong_layout_is_one_clear_error(scheme, given, expected, found,
                                         checkpoints):
    init, backbone = init_with(scheme, checkpoints[given])
    with pytest.raises(ValueError) as error:
        init(backbone)
    message = str(error.value)
    assert message.startswith(checkpoints[given] + ': ')
    assert f'expects {expected}' in message
    assert f'found {found}' in message


def test_weights_for_another_scheme_are_one_clear_error(checkpoints):
    # the config says bcn-ws, but its layers were edited to GN
    scope, cfg = backbone_config(COCO.format('bcn-ws-all'))
    cfg['norm_cfg'] = dict(type='GN', num_groups=4, requires_grad=True)
    backbone = build(scope, dict(narrow(cfg), init_cfg=None))
    init = ConvertedPretrained(checkpoint=checkpoints['bcn-ws'],
                               source='bcn-ws')
    with pytest.raises(ValueError, match=r"has GroupNorm \+ WSConv2d; "
                       r"'bcn-ws' weights need BCN \+ WSConv2d"):
        init(backbone)


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"source='caffe' is not valid; "
                       r"choose one of \('bcn-ws', 'gn-ws', 'torchvision', "
                       r"'detectron-gn'\)"):
        ConvertedPretrained(checkpoint='x.pth', source='caffe')


def test_missing_and_unexpected_keys_are_reported(checkpoints, tmp_path):
    sd = torch.load(checkpoints['torchvision'], weights_only=True)
    del sd['layer4.2.conv3.weight']
    sd['layer9.0.conv1.weight'] = torch.zeros(1)
    partial = str(tmp_path / 'partial.pth')
    torch.save(sd, partial)

    init, backbone = init_with('bn', partial)
    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        init(backbone)
    finally:
        logger.removeHandler(handler)
    assert init.missing_keys == ['layer4.2.conv3.weight']
    assert init.unexpected_keys == ['layer9.0.conv1.weight']
    assert any("missing keys: ['layer4.2.conv3.weight']; unexpected keys: "
               "['layer9.0.conv1.weight']" in m for m in handler.messages)

    strict = ConvertedPretrained(checkpoint=partial, source='torchvision',
                                 strict=True)
    with pytest.raises(ValueError, match=r"missing keys: "
                       r"\['layer4\.2\.conv3\.weight'\]"):
        strict(backbone)


class Payload:
    """Unpickling this would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_checkpoints_are_not_unpickled_without_restriction(checkpoints,
                                                           tmp_path):
    sd = torch.load(checkpoints['torchvision'], weights_only=True)
    marker = tmp_path / 'ran'
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': sd, 'meta': Payload(str(marker))}, evil)
    init, backbone = init_with('bn', evil)
    with pytest.raises(Exception):
        init(backbone)
    assert not marker.exists()
