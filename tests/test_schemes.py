"""Schemes rewrite every conv/norm of real mmdet / mmseg models."""
from collections import Counter

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from mmbcn import BCN, WSConv2d
from mmbcn.models.layers import (ChannelAffine, EvoNormB0, EvoNormS0,
                                 ScaledWSConv2d, StatsMode)
from mmbcn.schemes import (SCHEMES, apply_config_scheme, apply_scheme,
                           get_scheme)

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
DEEPLABV3 = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py'


def load(base, tmp_path):
    # Config.fromfile cannot open an mmdet:: path directly; inherit it.
    path = tmp_path / 'cfg.py'
    path.write_text(f"_base_ = '{base}'\n")
    return Config.fromfile(str(path))


def layer_counts(model):
    counts = Counter()
    for m in model.modules():
        if isinstance(m, WSConv2d):
            counts['ws'] += 1
        elif isinstance(m, ScaledWSConv2d):
            counts['sws'] += 1
        elif isinstance(m, torch.nn.Conv2d):
            counts['conv'] += 1
        if isinstance(m, BCN):
            counts['bcn'] += 1
        elif isinstance(m, torch.nn.GroupNorm):
            counts['gn'] += 1
        elif isinstance(m, _BatchNorm) and not isinstance(m, StatsMode):
            counts['bn'] += 1  # (BCN's and EvoNorm-B0's norm_eval switch)
        elif isinstance(m, (EvoNormB0, EvoNormS0)):
            counts['evonorm'] += 1
        elif isinstance(m, ChannelAffine):
            counts['affine'] += 1
    return counts


def build(cfg):
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


# Mask R-CNN R-50-FPN: 53 backbone convs, FPN 4 lateral + 4 output,
# 4 bbox-head convs (4conv1fc) and 4 mask-head convs are normalized; the RPN
# convs (3) and the mask logits conv (1) are outputs without norm_cfg.
MASK_RCNN_COUNTS = {
    'bn': dict(conv=69, bn=53),
    'gn': dict(conv=73, gn=69),
    'gn-ws': dict(ws=69, conv=4, gn=69),
    'bcn': dict(conv=73, bcn=69),
    'bcn-ws': dict(ws=69, conv=4, bcn=69),
    'sws': dict(sws=69, conv=4, affine=69),
    'evonorm-b0': dict(conv=73, evonorm=69),
    'evonorm-s0': dict(conv=73, evonorm=69),
}
# DeepLabV3 R-50-D8 (ResNetV1c: 3-conv stem): 62 normalized convs in
# backbone, ASPP head and FCN auxiliary head; the two classifiers are plain.
DEEPLABV3_COUNTS = {
    'bn': dict(conv=64, bn=62),
    'gn-ws': dict(ws=62, conv=2, gn=62),
    'bcn-ws': dict(ws=62, conv=2, bcn=62),
    'evonorm-s0': dict(conv=64, evonorm=62),
}


@pytest.mark.parametrize('scheme', sorted(MASK_RCNN_COUNTS))
def test_mask_rcnn_counts(scheme, tmp_path):
    cfg = apply_config_scheme(load(MASK_RCNN, tmp_path), scheme)
    assert layer_counts(build(cfg)) == Counter(MASK_RCNN_COUNTS[scheme])
    head = cfg.model.roi_head.bbox_head.type
    assert head == ('Shared2FCBBoxHead' if scheme == 'bn'
                    else 'Shared4Conv1FCBBoxHead')
    assert cfg.norm_scheme == scheme


@pytest.mark.parametrize('scheme', sorted(DEEPLABV3_COUNTS))
def test_deeplabv3_counts(scheme, tmp_path):
    cfg = apply_config_scheme(load(DEEPLABV3, tmp_path), scheme)
    assert layer_counts(build(cfg)) == Counter(DEEPLABV3_COUNTS[scheme])


def test_syncbn_scheme_config(tmp_path):
    cfg = apply_config_scheme(load(DEEPLABV3, tmp_path), 'syncbn')
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert cfg.model.backbone.conv_cfg is None


def test_scheme_replaces_a_previous_scheme(tmp_path):
    cfg = load(MASK_RCNN, tmp_path)
    apply_config_scheme(cfg, 'gn-ws')
    apply_config_scheme(cfg, 'bcn')
    assert layer_counts(build(cfg)) == Counter(MASK_RCNN_COUNTS['bcn'])
    assert cfg.norm_scheme == 'bcn'


def test_config_key_and_overrides(tmp_path):
    cfg = load(DEEPLABV3, tmp_path)
    cfg.norm_scheme = dict(name='bcn-ws', norm=dict(num_groups=16,
                                                    update_rate=0.05))
    apply_config_scheme(cfg)
    model = build(cfg)
    bcn = [m for m in model.modules() if isinstance(m, BCN)]
    assert bcn and all(m.num_groups == 16 for m in bcn)
    assert float(bcn[0].update_rate) == pytest.approx(0.05)
    # the table itself is not modified by overrides
    assert SCHEMES['bcn-ws'].norm_cfg['num_groups'] == 32


def test_hand_written_norm_cfg_is_left_alone(tmp_path):
    cfg = load(DEEPLABV3, tmp_path)
    cfg.model.backbone.norm_cfg = dict(type='BCN', num_groups=8)
    cfg.model.backbone.conv_cfg = dict(type='WSConv2d', eps_mode='std')
    apply_config_scheme(cfg)  # no norm_scheme key: nothing changes
    assert cfg.model.backbone.norm_cfg.num_groups == 8
    model = build(cfg)
    assert model.backbone.stem[0].eps_mode == 'std'


def test_unknown_scheme_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_scheme('layernorm')
    assert "'layernorm'" in str(err.value)
    for name in SCHEMES:
        assert name in str(err.value)
    with pytest.raises(ValueError, match='unknown keys'):
        get_scheme(dict(name='gn', groups=4))
    with pytest.raises(ValueError, match='no conv layer'):
        get_scheme(dict(name='gn', conv=dict(eps_mode='std')))


def test_bad_model_config():
    with pytest.raises(ValueError, match="scope='mmpose'"):
        apply_scheme(dict(type='MaskRCNN'), 'gn', scope='mmpose')
    with pytest.raises(ValueError, match='needs a model config dict'):
        apply_scheme([], 'gn')
