"""The small Swin Mask R-CNN configs of the shapes comparison
(configs/swin/mask-rcnn_swin-tiny_fpn_{,prepbn_}1xb2-300i_shapes.py):
built with mmdet's own Config / MODELS, their labels checked, a few
iterations of each trained by mmbcn's runner on a tiny shapes dataset, the
PRepBN schedule ending at lam = 0 and the re-parameterized model equal to
the trained one in eval."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmbcn.apis import load_config, train
from mmbcn.datasets import generate_shapes
from mmbcn.models.layers import PRepBN
from mmbcn.schemes import check_norm_scheme
from repo import REPO

SWIN = osp.join(REPO, 'configs', 'swin')
LN = osp.join(SWIN, 'mask-rcnn_swin-tiny_fpn_1xb2-300i_shapes.py')
PREPBN = osp.join(SWIN, 'mask-rcnn_swin-tiny_fpn_prepbn_1xb2-300i_shapes.py')
# blocks (depths 1-1-2-1, two norms each), 3 patch mergings, 4 outputs,
# the patch embedding
NUM_NORMS = 2 * 5 + 3 + 4 + 1
ITERS = 4


def mmdet_build(path):
    cfg = Config.fromfile(path)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return cfg, MODELS.build(copy.deepcopy(cfg.model))


def test_configs_build_with_mmdet():
    ln_cfg, ln_model = mmdet_build(LN)
    pb_cfg, pb_model = mmdet_build(PREPBN)
    assert (ln_cfg.norm_scheme, pb_cfg.norm_scheme) == ('ln', 'prepbn')
    check_norm_scheme(ln_cfg)
    check_norm_scheme(pb_cfg)
    lns = [m for m in ln_model.backbone.modules()
           if type(m) is nn.LayerNorm]
    assert len(lns) == NUM_NORMS
    assert not any(isinstance(m, PRepBN) for m in ln_model.modules())
    layers = [m for m in pb_model.backbone.modules() if isinstance(m, PRepBN)]
    assert len(layers) == NUM_NORMS
    assert sum(type(m) is nn.LayerNorm
               for m in pb_model.backbone.modules()) == NUM_NORMS  # .ln
    # the same optimizer, schedule and model but for the norms
    assert ln_cfg.optim_wrapper == pb_cfg.optim_wrapper
    assert ln_cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert ln_cfg.param_scheduler == pb_cfg.param_scheduler
    ln_model_cfg = ln_cfg.model.to_dict()
    ln_model_cfg['backbone'].pop('norm_cfg')
    pb_model_cfg = pb_cfg.model.to_dict()
    pb_model_cfg['backbone'].pop('norm_cfg')
    assert ln_model_cfg == pb_model_cfg
    assert ln_cfg.model.backbone.init_cfg is None  # from scratch
    # the base's hooks kept, the schedule added
    assert [h['type'] for h in ln_cfg.custom_hooks] == \
        ['PeakMemoryHook', 'SingularityHook']
    assert [h['type'] for h in pb_cfg.custom_hooks] == \
        ['PeakMemoryHook', 'SingularityHook', 'PRepBNScheduleHook']
    assert pb_cfg.custom_hooks[1] == ln_cfg.custom_hooks[1]


def test_labels_are_checked():
    cfg = Config.fromfile(LN)
    cfg.norm_scheme = 'prepbn'
    with pytest.raises(ValueError, match=r"norm_scheme='prepbn' does not "
                       r"describe the model: model.backbone.norm_cfg is "
                       r"type='LN'.*no PRepBNScheduleHook"):
        check_norm_scheme(cfg)
    cfg = Config.fromfile(PREPBN)
    cfg.norm_scheme = 'ln'
    with pytest.raises(ValueError, match="type='PRepBN', 'ln' has"):
        check_norm_scheme(cfg)
    cfg.norm_scheme = 'layernorm'
    with pytest.raises(ValueError, match="neither a scheme .* nor a label"):
        check_norm_scheme(cfg)
    # mmdet's Swin-T config writes no norm_cfg: SwinTransformer's default
    cfg = Config.fromfile(osp.join(SWIN,
                                   'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'))
    cfg.norm_scheme = 'ln'
    check_norm_scheme(cfg)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('swin_shapes')
    generate_shapes(root, num_train=4, num_val=2, progress=False)
    return str(root) + '/'


def train_few(path, data_root, work_dir):
    ann = data_root + 'annotations/instances_val.json'
    options = {
        'train_cfg.max_iters': ITERS, 'train_cfg.val_interval': ITERS,
        'param_scheduler.0.end': 2, 'param_scheduler.1.begin': 2,
        'param_scheduler.1.end': ITERS,
        'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
        'default_hooks.logger.interval': 1,
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.data_root': data_root,
                        f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
    cfg = load_config(path, cfg_options=options, work_dir=str(work_dir))
    runner = train(cfg)
    assert runner.iter == ITERS
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), loss
    return runner


def test_layer_norm_config_trains(shapes, tmp_path, one_thread):
    train_few(LN, shapes, tmp_path)


def test_prepbn_config_trains_to_repbn_and_reparameterizes(
        shapes, tmp_path, one_thread):
    torch.manual_seed(0)
    runner = train_few(PREPBN, shapes, tmp_path)
    backbone = runner.model.backbone
    layers = [m for m in backbone.modules() if isinstance(m, PRepBN)]
    assert len(layers) == NUM_NORMS
    # the hook's schedule over max_iters ends at RepBN alone
    assert {float(m.lam) for m in layers} == {0.0}
    # iteration 0 ran at lam = 1 (LayerNorm alone, the BN branch skipped)
    assert {int(m.repbn.bn.num_batches_tracked) for m in layers} == \
        {ITERS - 1}

    # eval: the trained model == its re-parameterization (one BatchNorm1d
    # on the (M, C) token rows per layer), in float64 to compare exactly
    backbone = copy.deepcopy(backbone).double()
    backbone.eval()  # (mmdet's SwinTransformer.train returns None)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = backbone(x)

    class Rows(nn.Module):

        def __init__(self, bn):
            super().__init__()
            self.bn = bn

        def forward(self, x):
            return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    for module in list(backbone.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PRepBN):
                setattr(module, name, Rows(child.reparameterize()))
    assert not any(isinstance(m, PRepBN) for m in backbone.modules())
    with torch.no_grad():
        got = backbone(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)
