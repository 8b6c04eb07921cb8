"""mmdet's and mmseg's own behaviours (their test suites' ideas) with every
mmbcn norm and conv: with_cp, norm_eval, frozen_stages, zero_init_residual,
batch 1 on 1x1 maps, empty RoIs. A new layer added to ``norm_cases.NORMS``
(or ``CONVS`` here) is checked the same way. The contract is what the
backbones and heads do with their own norms (BatchNorm, GroupNorm)."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

import mmbcn  # noqa: F401 (registers the layers)
from norm_cases import BATCH_STATS, ESTIMATING, NORMS

CONVS = {'conv': None, 'ws': dict(type='WSConv2d'),
         'scaled-ws': dict(type='ScaledWSConv2d')}
SCOPES = ('mmdet', 'mmseg')


def registry(scope):
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS


def norm_cfg(case):
    return dict(NORMS[case], requires_grad=True)


def resnet(scope, case, conv='ws', **kwargs):
    torch.manual_seed(0)
    cfg = dict(type='ResNet', depth=18, num_stages=2, out_indices=(0, 1),
               strides=(1, 2), dilations=(1, 1), base_channels=8,
               stem_channels=8, norm_eval=False, conv_cfg=CONVS[conv],
               norm_cfg=norm_cfg(case))
    cfg.update(kwargs)
    model = registry(scope).build(cfg)
    model.init_weights()
    return model


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def train_step(model, x):
    outs = model(x)
    sum((o * o.detach().sin()).sum() for o in outs).backward()
    return [o.detach() for o in outs]


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('conv', sorted(CONVS))
@pytest.mark.parametrize('case', sorted(NORMS))
def test_resnet_with_cp_equals_without(scope, case, conv):
    plain = resnet(scope, case, conv)
    ckpt = resnet(scope, case, conv, with_cp=True)
    plain.train()
    ckpt.train()
    for seed in range(2):
        x = torch.randn(2, 3, 16, 16,
                        generator=torch.Generator().manual_seed(seed))
        # with_cp checkpoints only where the input requires grad
        ys = train_step(plain, x.clone().requires_grad_())
        ys_cp = train_step(ckpt, x.clone().requires_grad_())
        for a, b in zip(ys_cp, ys):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5,
                                   msg=name)
    expected = state(plain)
    for name, value in ckpt.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6,
                                   msg=name)


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('case', ESTIMATING)
def test_resnet_norm_eval(scope, case):
    model = resnet(scope, case, norm_eval=True)
    model.train()
    before = state(model)
    train_step(model, torch.randn(2, 3, 16, 16))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert model.layer1[0].norm1.weight.grad is not None


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('case', sorted(NORMS))
def test_resnet_frozen_stages(scope, case):
    model = resnet(scope, case, frozen_stages=1)
    model.train()
    for module in (model.conv1, model.norm1, model.layer1):
        assert all(not p.requires_grad for p in module.parameters())
    assert not model.norm1.training and not model.layer1.training
    before = state(model)
    train_step(model, torch.randn(2, 3, 16, 16))
    after = model.state_dict()
    for name in before:
        if name.startswith(('norm1.', 'layer1.')):  # frozen: unchanged
            assert torch.equal(after[name], before[name]), name
    if case in ESTIMATING and 'deferred' not in case:  # stage 2 estimates
        assert any(not torch.equal(after[n], before[n]) for n in before
                   if n.startswith('layer2.') and 'running' in n)
    assert all(p.grad is not None for p in model.layer2.parameters())


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('conv', sorted(CONVS))
@pytest.mark.parametrize('case', sorted(NORMS))
def test_resnet_zero_init_residual(scope, case, conv):
    """The last norm of every block starts at zero: each block is the
    identity (then ReLU) on its input, as with BatchNorm."""
    model = resnet(scope, case, conv, zero_init_residual=True)
    model.eval()
    block = model.layer1[0]
    assert block.downsample is None
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x), rtol=0, atol=0)


def batch_one_on_one_by_one(layer, x):
    """What mmseg's image pooling does: a 1x1 map of one image."""
    y = layer(x)
    y.sum().backward()
    return y


@pytest.mark.parametrize('conv', sorted(CONVS))
@pytest.mark.parametrize('case', sorted(NORMS))
def test_batch_one_on_one_by_one_maps(case, conv):
    """mmseg's ASPP image pool with one image: BatchNorm refuses it in
    training (one value per channel); batch-independent norms and
    micro-batch BCN and MABN (a moving second moment) work; the norms with
    current-batch statistics (BATCH_STATS) refuse it as BatchNorm does."""
    from mmcv.cnn import ConvModule
    x = torch.randn(1, 8, 1, 1)
    bn = ConvModule(8, 8, 1, norm_cfg=dict(type='BN')).train()
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        bn(x)
    module = ConvModule(8, 8, 1, conv_cfg=CONVS[conv],
                        norm_cfg=norm_cfg(case)).train()
    if case in BATCH_STATS:
        with pytest.raises(ValueError,
                           match='more than 1 value per channel'):
            module(x)
        return
    y = batch_one_on_one_by_one(module, x)
    assert y.shape == (1, 8, 1, 1) and torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters()
               if p.grad is not None)


@pytest.mark.parametrize('conv', sorted(CONVS))
@pytest.mark.parametrize('case', sorted(NORMS))
def test_mask_head_with_zero_rois(case, conv):
    """Mask R-CNN's mask head on an image without positive RoIs (mmdet's
    test_standard_roi_head_loss_empty_gt): an empty prediction and a loss
    whose backward reaches every parameter with zero gradient."""
    head = registry('mmdet').build(dict(
        type='FCNMaskHead', num_convs=2, in_channels=8, conv_out_channels=8,
        num_classes=3, conv_cfg=CONVS[conv], norm_cfg=norm_cfg(case)))
    head.train()
    before = state(head)
    pred = head(torch.randn(0, 8, 7, 7))
    assert pred.shape == (0, 3, 14, 14)
    pred.sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and not p.grad.any(), name
    for name, value in head.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize('case', sorted(NORMS))
def test_fpn_and_decode_head(case):
    """mmdet's FPN and mmseg's FCN decode head with WS convs and the norm:
    forward, backward, eval; at batch 1 and 2."""
    fpn = registry('mmdet').build(dict(
        type='FPN', in_channels=[8, 16], out_channels=8, num_outs=3,
        conv_cfg=CONVS['ws'], norm_cfg=norm_cfg(case)))
    head = registry('mmseg').build(dict(
        type='FCNHead', in_channels=8, channels=8, num_convs=2,
        num_classes=3, conv_cfg=CONVS['ws'], norm_cfg=norm_cfg(case)))
    for batch in (1, 2):
        feats = [torch.randn(batch, 8, 8, 8), torch.randn(batch, 16, 4, 4)]
        outs = fpn(feats)
        assert [o.shape[-1] for o in outs] == [8, 4, 2]
        seg = head([outs[0]])
        assert seg.shape == (batch, 3, 8, 8)
        (sum(o.sum() for o in outs) + seg.sum()).backward()
    fpn.eval()
    head.eval()
    frozen = copy.deepcopy(state(head))
    head([fpn(feats)[0]])
    for name, value in head.state_dict().items():
        assert torch.equal(value, frozen[name]), name
