"""The layers inside real mmdet / mmseg modules, built from configs."""
import pytest
import torch
from mmengine.registry import init_default_scope

from mmbcn import BCN, WSConv2d

CONV_CFG = dict(type='WSConv2d')
NORM_CFGS = {
    'micro': dict(type='BCN', num_groups=32, requires_grad=True),
    'large': dict(type='BCN', num_groups=32, mode='large',
                  requires_grad=True),
}


def count(model, cls):
    return sum(isinstance(m, cls) for m in model.modules())


@pytest.mark.parametrize('mode', ['micro', 'large'])
@pytest.mark.parametrize('batch', [1, 2])
def test_mmdet_resnet50_fpn(mode, batch):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    norm_cfg = NORM_CFGS[mode]
    backbone = MODELS.build(dict(
        type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
        frozen_stages=-1, norm_eval=False, style='pytorch',
        conv_cfg=CONV_CFG, norm_cfg=norm_cfg))
    neck = MODELS.build(dict(
        type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
        num_outs=5, conv_cfg=CONV_CFG, norm_cfg=norm_cfg))
    backbone.init_weights()
    # every conv of ResNet-50 (53) and FPN (4 lateral + 4 output) is WS,
    # every norm is BCN
    assert count(backbone, WSConv2d) == 53
    assert count(backbone, torch.nn.BatchNorm2d) == 0
    assert count(backbone, BCN) == 53
    assert count(neck, WSConv2d) == 8 and count(neck, BCN) == 8
    backbone.train()
    neck.train()
    x = torch.randn(batch, 3, 64, 64, requires_grad=True)
    outs = neck(backbone(x))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2, 1]
    sum(o.pow(2).mean() for o in outs).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    stem = backbone.conv1
    assert stem.weight.grad is not None and torch.isfinite(
        stem.weight.grad).all()
    norm = getattr(backbone, backbone.norm1_name)
    assert backbone.norm1_name == 'bcn1'
    assert norm.batch_weight.grad is not None
    assert norm.num_batches_tracked.item() == 1


@pytest.mark.parametrize('batch', [1, 2])
def test_mmseg_aspp_head(batch):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    head = MODELS.build(dict(
        type='ASPPHead', in_channels=64, in_index=0, channels=32,
        dilations=(1, 2, 3, 4), dropout_ratio=0.1, num_classes=5,
        conv_cfg=CONV_CFG, norm_cfg=dict(type='BCN', num_groups=8),
        align_corners=False))
    assert count(head, BCN) == 6  # image pool (1x1), 4 ASPP, bottleneck
    assert count(head, WSConv2d) == 6
    # the image-pool branch normalizes a 1x1 map
    pool_norm = [m for m in head.image_pool.modules() if isinstance(m, BCN)]
    assert len(pool_norm) == 1
    head.train()
    x = torch.randn(batch, 64, 9, 9, requires_grad=True)
    logits = head([x])
    assert logits.shape == (batch, 5, 9, 9)
    logits.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert pool_norm[0].num_batches_tracked.item() == 1
    head.eval()
    with torch.no_grad():
        assert head([x]).shape == (batch, 5, 9, 9)
