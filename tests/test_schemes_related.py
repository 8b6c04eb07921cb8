"""The schemes of the other micro-batch normalizations (frn, brn, mabn,
cbn): what ``--norm`` builds on stock mmdet / mmseg models, and the hooks
they write into ``custom_hooks``."""
from collections import Counter

import pytest
import torch
from mmengine.config import Config

from mmbcn.engine.hooks import BatchRenormScheduleHook, CBNLinkHook
from mmbcn.models.layers import (FRN, MABN, BatchRenorm, CenteredConv2d,
                                 CrossIterationBN)
from mmbcn.schemes import (SCHEMES, apply_config_scheme, get_scheme,
                           with_scheme_hooks)
from test_schemes import DEEPLABV3, MASK_RCNN, build, load


def counts(model):
    found = Counter()
    for m in model.modules():
        for name, cls in (('frn', FRN), ('brn', BatchRenorm), ('mabn', MABN),
                          ('cbn', CrossIterationBN)):
            if isinstance(m, cls):
                found[name] += 1
        if isinstance(m, CenteredConv2d):
            found['centered'] += 1
        elif isinstance(m, torch.nn.Conv2d):
            found['conv'] += 1
        elif type(m) is torch.nn.BatchNorm2d:
            found['bn'] += 1
    return found


# Mask R-CNN R-50-FPN (see test_schemes): 69 normalized convs, of which 53
# in the backbone and 16 in the FPN and the RoI box / mask heads
MASK_RCNN_COUNTS = {
    'frn': dict(conv=73, frn=69),
    'brn': dict(conv=73, brn=69),
    'mabn': dict(centered=69, conv=4, mabn=69),
    # the paper's setting: the backbone's (frozen) BN stays
    'cbn': dict(conv=73, bn=53, cbn=16),
}
DEEPLABV3_COUNTS = {
    'frn': dict(conv=64, frn=62),
    'mabn': dict(centered=62, conv=2, mabn=62),
    # ASPP (image pool, 4 branches, bottleneck) and the FCN head; the
    # backbone keeps mmseg's SyncBN (counted apart)
    'cbn': dict(conv=64, cbn=7),
}


@pytest.mark.parametrize('scheme', sorted(MASK_RCNN_COUNTS))
def test_mask_rcnn_layers(scheme, tmp_path):
    cfg = apply_config_scheme(load(MASK_RCNN, tmp_path), scheme)
    assert counts(build(cfg)) == Counter(MASK_RCNN_COUNTS[scheme])
    assert cfg.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert cfg.norm_scheme == scheme


@pytest.mark.parametrize('scheme', sorted(DEEPLABV3_COUNTS))
def test_deeplabv3_layers(scheme, tmp_path):
    cfg = apply_config_scheme(load(DEEPLABV3, tmp_path), scheme)
    model = build(cfg)
    assert counts(model) == Counter(DEEPLABV3_COUNTS[scheme])
    syncbn = sum(isinstance(m, torch.nn.SyncBatchNorm)
                 for m in model.backbone.modules())
    assert syncbn == (55 if scheme == 'cbn' else 0)


def test_frn_scheme_turns_the_tlu_off_before_the_relu():
    # the ResNets put a ReLU after each norm: TLU + ReLU is not the paper's
    # FRN + TLU, and its tau would never get a gradient
    frn = get_scheme('frn')
    assert frn.norm_cfg['tlu'] is False and frn.norm_cfg['eps'] == 1e-6
    assert 'ReLU' in frn.description
    layer = FRN(4, tlu=True)
    x = torch.randn(2, 4, 5, 5)
    torch.relu(layer(x)).sum().backward()
    assert layer.tau.grad.abs().max() == 0


@pytest.mark.parametrize('scheme,hook', [('brn', 'BatchRenormScheduleHook'),
                                         ('cbn', 'CBNLinkHook')])
def test_norm_adds_the_scheme_hooks(scheme, hook, tmp_path):
    cfg = apply_config_scheme(load(MASK_RCNN, tmp_path), scheme)
    assert [h['type'] for h in cfg.custom_hooks] == [hook]
    # switching to another scheme removes them, other hooks stay
    cfg.custom_hooks.append(dict(type='PeakMemoryHook'))
    cfg = apply_config_scheme(cfg, 'gn')
    assert [h['type'] for h in cfg.custom_hooks] == ['PeakMemoryHook']


def test_hooks_of_the_config_are_kept():
    mine = dict(type='BatchRenormScheduleHook', start_iter=1, r_max_iter=2,
                d_max_iter=2)
    assert with_scheme_hooks([mine], 'brn') == [mine]
    assert with_scheme_hooks([mine], 'cbn') == list(SCHEMES['cbn'].hooks)


def test_label_without_the_hook_is_refused(tmp_path):
    cfg = apply_config_scheme(load(MASK_RCNN, tmp_path), 'cbn')
    cfg.custom_hooks = []
    with pytest.raises(ValueError, match='custom_hooks has no CBNLinkHook'):
        apply_config_scheme(cfg)


def test_overrides_keep_the_hooks_and_the_backbone_rule():
    scheme = get_scheme(dict(name='cbn', norm=dict(buffer_num=1)))
    assert scheme.hooks == SCHEMES['cbn'].hooks
    assert scheme.backbone is False and scheme.norm_cfg['buffer_num'] == 1


class FakeRunner:
    """What the hooks read of a runner: ``max_iters``, ``iter``, ``model``
    (a real module)."""

    def __init__(self, model, max_iters):
        self.model, self.max_iters, self.iter = model, max_iters, 0


def test_batch_renorm_schedule_by_fraction():
    hook = BatchRenormScheduleHook(**{
        k: v for k, v in SCHEMES['brn'].hooks[0].items() if k != 'type'})
    layer = BatchRenorm(3)
    runner = FakeRunner(torch.nn.Sequential(layer), 1000)
    hook.before_train(runner)
    assert (hook.start_iter, hook.d_max_iter, hook.r_max_iter) == (50, 250,
                                                                   400)
    seen = []
    for it in (0, 50, 150, 250, 400, 999):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append((float(layer.r_max), float(layer.d_max)))
    assert seen[:2] == [(1.0, 0.0), (1.0, 0.0)]
    assert seen[2] == pytest.approx((1 + 2 * 100 / 350, 5 * 100 / 200))
    assert seen[3][1] == 5.0 and seen[4:] == [(3.0, 5.0), (3.0, 5.0)]
    with pytest.raises(ValueError, match=r'start_iter=5 is not valid with '
                       r'by_fraction=True; it must be a number in \[0, 1\]'):
        BatchRenormScheduleHook(start_iter=5, by_fraction=True)


def test_cbn_link_hook_sets_the_burn_in():
    conv = torch.nn.Conv2d(2, 3, 3, bias=False)
    cbn = CrossIterationBN(3)
    hook = CBNLinkHook(burnin_fraction=2 / 3)
    hook.before_train(FakeRunner(torch.nn.Sequential(conv, cbn), 300))
    assert cbn.burnin_iters == 200 and hook.convs == 1
    with pytest.raises(ValueError, match=r'burnin_fraction=1 is not valid'):
        CBNLinkHook(burnin_fraction=1)


def test_generated_config_says_its_hooks():
    from repo import REPO
    cfg = Config.fromfile(f'{REPO}/configs/shapes/mask-rcnn_r18_fpn_'
                          'cbn-neck-head_1xb2-300i_shapes.py')
    types = [h['type'] for h in cfg.custom_hooks]
    assert types == ['PeakMemoryHook', 'SingularityHook', 'CBNLinkHook']
    assert 'norm_cfg' not in cfg.model.backbone or \
        cfg.model.backbone.norm_cfg.type == 'BN'
