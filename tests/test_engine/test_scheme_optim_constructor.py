"""Every scheme gives the config NormAwareOptimWrapperConstructor, so
``paramwise_cfg``'s norm rules reach mmbcn's norms (as they reach GroupNorm
under mmengine's default constructor) in configs built by mmdet's / mmseg's
own Runner, and a config that would leave them out is one clear error."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmbcn import apis
from mmbcn.models.layers import MMBCN_NORM_TYPES
from mmbcn.models.layers.norm_types import is_norm_layer
from mmbcn.schemes import (OPTIM_CONSTRUCTOR, SCHEMES, apply_norm,
                           check_optim_constructor, scheme_config_edits)
from repo import REPO

SHAPES = osp.join(REPO, 'configs', 'shapes')
DET = 'mask-rcnn_r18_fpn_{}_1xb2-300i_shapes.py'
SEG = 'deeplabv3_r18-d8_{}_1xb2-1000i_shapes.py'


def shapes_config(scheme, det=True):
    tag = scheme + ('-all' if det and SCHEMES[scheme].normalize_all else '')
    return Config.fromfile(osp.join(SHAPES, (DET if det else SEG).format(tag)))


def decay_by_param(model, wrapper):
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    return {n: decay[id(p)] for n, p in model.named_parameters()}


def norm_params(model):
    return [f'{name}.{p}' for name, m in model.named_modules()
            if is_norm_layer(m) for p, _ in m.named_parameters(recurse=False)]


@pytest.mark.parametrize('scheme', sorted(SCHEMES))
def test_every_scheme_sets_the_constructor(scheme):
    base = Config.fromfile(osp.join(REPO, 'configs', '_base_',
                                    'mask-rcnn_r18_fpn_1xb2-300i_shapes.py'))
    edits = scheme_config_edits(base.model.to_dict(), scheme, 'mmdet')
    assert edits['optim_wrapper'] == dict(constructor=OPTIM_CONSTRUCTOR)
    # --norm on a config without it
    cfg = copy.deepcopy(base)
    assert 'constructor' not in cfg.optim_wrapper
    apply_norm(cfg, scheme)
    assert cfg.optim_wrapper.constructor == OPTIM_CONSTRUCTOR


def test_generated_leaves_name_the_constructor():
    import glob
    leaves = [p for family in ('mask_rcnn', 'deeplabv3', 'shapes',
                               'finetune')
              for p in glob.glob(osp.join(REPO, 'configs', family, '*.py'))]
    assert len(leaves) >= 128
    for path in leaves:
        with open(path, encoding='utf-8') as f:
            assert f"constructor='{OPTIM_CONSTRUCTOR}'" in f.read(), path
    # a 1-image leaf keeps its halved lr next to the constructor
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'mask_rcnn',
        'mask-rcnn_r101_fpn_bcn-ws-all_8xb1-2x_coco.py'))
    assert cfg.optim_wrapper.constructor == OPTIM_CONSTRUCTOR
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.optim_wrapper.optimizer.type == 'SGD'


@pytest.mark.parametrize('det', [True, False], ids=['mmdet', 'mmseg'])
def test_runner_builds_norm_groups_from_a_generated_config(det, tmp_path):
    """mmdet's / mmseg's Runner (custom_imports, default scope) finds the
    constructor; BCN's parameters then get norm_decay_mult as GN's do."""
    for scheme in ('bcn-ws', 'gn-ws'):
        cfg = shapes_config(scheme, det)
        cfg.optim_wrapper.paramwise_cfg = dict(norm_decay_mult=0.)
        cfg.work_dir = str(tmp_path / scheme)
        cfg.visualizer.name = f'vis_{scheme}_{det}'
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
        decay = decay_by_param(runner.model, wrapper)
        norms = norm_params(runner.model)
        assert norms
        assert all(decay[n] == 0. for n in norms), scheme
        others = {decay[n] for n in decay if n not in norms}
        assert others == {cfg.optim_wrapper.optimizer.weight_decay}
        assert any(isinstance(m, MMBCN_NORM_TYPES)
                   for m in runner.model.modules()) == (scheme == 'bcn-ws')


@pytest.mark.parametrize('scheme', ['bn', 'gn', 'gn-ws'])
def test_torch_norm_schemes_get_the_default_groups(scheme):
    cfg = shapes_config(scheme)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    paramwise = dict(norm_decay_mult=0., bias_decay_mult=0.5,
                     bias_lr_mult=2., flat_decay_mult=0.3)
    optim = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim['paramwise_cfg'] = paramwise
    ours = build_optim_wrapper(model, copy.deepcopy(optim))
    assert type(ours).__name__ == 'OptimWrapper'
    optim.pop('constructor')
    default = build_optim_wrapper(model, optim)

    def groups(wrapper):
        by_param = {}
        for group in wrapper.optimizer.param_groups:
            for p in group['params']:
                by_param[id(p)] = (group['lr'], group['weight_decay'])
        return {n: by_param[id(p)] for n, p in model.named_parameters()}

    assert groups(ours) == groups(default)


@pytest.mark.parametrize('rule', ['norm_decay_mult', 'bias_decay_mult',
                                  'flat_decay_mult', 'bias_lr_mult'])
def test_default_constructor_with_mmbcn_norms_is_one_error(rule):
    cfg = shapes_config('bcn-ws')
    cfg.optim_wrapper.paramwise_cfg = {rule: 0.}
    apis.load_config(cfg)  # the generated constructor: fine
    for default in (None, 'DefaultOptimWrapperConstructor'):
        bad = copy.deepcopy(cfg)
        if default is None:
            bad.optim_wrapper.pop('constructor')
        else:
            bad.optim_wrapper.constructor = default
        with pytest.raises(ValueError) as error:
            apis.load_config(bad)
        message = str(error.value)
        assert '\n' not in message
        assert rule in message and 'model.backbone.norm_cfg' in message
        assert message.endswith(
            "set optim_wrapper.constructor='NormAwareOptimWrapperConstructor'")
    # torch's norms, or no norm rule: nothing to say
    gn = shapes_config('gn')
    gn.optim_wrapper.pop('constructor')
    gn.optim_wrapper.paramwise_cfg = {rule: 0.}
    check_optim_constructor(gn)
    plain = shapes_config('bcn-ws')
    plain.optim_wrapper.pop('constructor')
    plain.optim_wrapper.paramwise_cfg = dict(custom_keys={})
    check_optim_constructor(plain)
