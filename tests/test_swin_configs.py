"""The Swin-T Mask R-CNN configs: LayerNorm as mmdet, and PRepBN in the
Swin transformer, built with mmdet's registry; one training step on a tiny
input, the LN -> RepBN schedule, and the re-parameterized eval output."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmbcn.engine.hooks import PRepBNScheduleHook
from mmbcn.models.layers import PRepBN
from repo import REPO

SWIN = osp.join(REPO, 'configs', 'swin')
LN_CONFIG = osp.join(SWIN, 'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
PREPBN_CONFIG = osp.join(SWIN, 'mask-rcnn_swin-t-p4-w7_fpn_prepbn_1x_coco.py')
SIZE = 64


def build(path):
    cfg = Config.fromfile(path)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None  # no ImageNet weights here
    return cfg, MODELS.build(model_cfg)


class Runner:
    """What the hook reads: ``model``, ``iter``, ``max_iters``."""

    def __init__(self, model, max_iters):
        self.model, self.max_iters, self.iter = model, max_iters, 0


def tokens_bn(layer):
    """A PRepBN re-parameterized: its BatchNorm1d on the (M, C) rows."""
    bn = layer.reparameterize().eval()

    class Rows(nn.Module):
        def forward(self, x):
            return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    return Rows()


def test_layer_norm_config_is_mmdets():
    cfg, model = build(LN_CONFIG)
    norms = [m for m in model.backbone.modules()
             if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 3 + 4 + 1  # blocks, merging, outs, embed
    assert not any(isinstance(m, PRepBN) for m in model.modules())
    assert 'custom_hooks' not in cfg or not any(
        h['type'] == 'PRepBNScheduleHook' for h in cfg.custom_hooks)


def test_prepbn_config_trains_and_reparameterizes():
    torch.manual_seed(0)
    cfg, model = build(PREPBN_CONFIG)
    layers = [m for m in model.backbone.modules() if isinstance(m, PRepBN)]
    assert len(layers) == 2 * 12 + 3 + 4 + 1
    assert not any(type(m) is nn.LayerNorm for m in model.backbone.modules()
                   if not any(m is p.ln for p in layers))
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'PRepBNScheduleHook']
    assert len(hooks) == 1

    # the schedule: lam 1 -> 0 over the run's max_iters
    hook = PRepBNScheduleHook(**{k: v for k, v in hooks[0].items()
                                 if k != 'type'})
    runner = Runner(model, max_iters=4)
    hook.before_train(runner)
    runner.iter = 2
    hook.before_train_iter(runner, 2)
    assert {float(m.lam) for m in layers} == {0.5}

    # one training step of the whole detector on a tiny input, both
    # branches on
    from mmdet.testing import demo_mm_inputs
    model.train()
    data = demo_mm_inputs(2, [[3, SIZE, SIZE]] * 2, num_items=[2, 2],
                          with_mask=True)
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    loss = sum(v if torch.is_tensor(v) else sum(v)
               for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    block = layers[1]
    assert block.ln.weight.grad is not None
    assert block.repbn.bn.weight.grad is not None

    # the end of the schedule: RepBN alone, then eval == re-parameterized
    runner.iter = 4
    hook.before_train_iter(runner, 4)
    assert {float(m.lam) for m in layers} == {0.0}
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        model.backbone(x)  # training mode: RepBN's statistics move
    backbone = model.backbone.double()  # float64: the comparison is exact
    backbone.eval()  # (mmdet's SwinTransformer.train returns None)
    x = x.double()
    with torch.no_grad():
        expected = backbone(x)
    folded = copy.deepcopy(backbone)
    for name, module in list(folded.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, PRepBN):
                setattr(module, child_name, tokens_bn(child))
    assert not any(isinstance(m, PRepBN) for m in folded.modules())
    with torch.no_grad():
        got = folded(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


def test_hook_without_total_needs_a_longer_run():
    hook = PRepBNScheduleHook(warmup_iters=5)
    with pytest.raises(ValueError, match=r'total_iters=3 is not valid; it '
                       r'must be an int > warmup_iters=5'):
        hook.before_train(Runner(nn.Identity(), max_iters=3))
