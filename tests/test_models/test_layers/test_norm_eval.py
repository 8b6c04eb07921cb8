"""``norm_eval=True`` in mmdet's and mmseg's ResNets freezes mmbcn's
estimated statistics exactly as it freezes BatchNorm's; mmcv's and
mmengine's BatchNorm tools leave mmbcn's norms intact."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

import mmbcn  # noqa: F401 (registers the layers)
from norm_cases import BATCHNORMS, ESTIMATING, NORMS

SCOPES = ('mmdet', 'mmseg')


def resnet(scope, norm_cfg, norm_eval):
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ResNet', depth=18, num_stages=2, out_indices=(0, 1),
        strides=(1, 2), dilations=(1, 1), base_channels=8,
        norm_cfg=dict(norm_cfg, requires_grad=True), norm_eval=norm_eval))


def estimates(model):
    """Every estimate, and the statistics a deferred BCN has queued."""
    state = {k: v.clone() for k, v in model.state_dict().items()
             if 'running' in k or 'num_batches' in k}
    state.update({f'{name}.pending': torch.tensor(len(m.deferred))
                  for name, m in model.named_modules()
                  if hasattr(m, 'deferred')})
    return state


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('case', ['BN'] + sorted(NORMS))
def test_norm_eval_freezes_estimates_like_batchnorm(scope, case):
    norm_cfg = dict(type='BN') if case == 'BN' else NORMS[case]
    model = resnet(scope, norm_cfg, norm_eval=False)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    model(x)  # move the estimates away from their initial values
    frozen = copy.deepcopy(model)
    frozen.norm_eval = True
    frozen.train()
    before = estimates(frozen)
    out = frozen(x)
    after = estimates(frozen)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k
    # with frozen estimates a training step computes what eval computes ...
    reference = copy.deepcopy(frozen)
    reference.eval()
    for a, b in zip(out, reference(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ... and the norm parameters still train
    sum(o.sum() for o in out).backward()
    norm = frozen.layer1[0].norm1
    assert all(p.grad is not None for p in norm.parameters())
    assert norm.weight.grad.abs().sum() > 0
    if case in ESTIMATING:
        # without norm_eval the same step moves them (the test can fail)
        model.train()
        model(x)
        moved = estimates(model)
        assert any(not torch.equal(moved[k], before[k]) for k in before)


@pytest.mark.parametrize('case', ESTIMATING)
def test_train_after_norm_eval_restores_estimation(case):
    model = resnet('mmdet', NORMS[case], norm_eval=True)
    model.train()
    model.norm_eval = False
    model.train()
    before = estimates(model)
    model(torch.randn(2, 3, 16, 16))
    assert any(not torch.equal(v, before[k])
               for k, v in estimates(model).items())


@pytest.mark.parametrize('case', sorted(NORMS))
def test_batchnorm_tools_leave_mmbcn_norms_alone(case):
    """mmcv's fuse_conv_bn and mmengine's / torch's SyncBatchNorm converters
    look for _BatchNorm modules: they must not fold or replace mmbcn's. The
    mmbcn norms that are _BatchNorms (BATCHNORMS) fold correctly (their eval
    form is BatchNorm's), and the converters refuse them with an error
    rather than replace them by a plain SyncBatchNorm."""
    from mmcv.cnn import fuse_conv_bn
    from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
    from norm_cases import build_norm
    model = nn.Sequential(nn.Conv2d(3, 8, 3), build_norm(case, 8))
    model.train()
    model(torch.randn(2, 3, 9, 9))
    model.eval()
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    norm_type = type(model[1])
    if case in BATCHNORMS:
        fused = fuse_conv_bn(copy.deepcopy(model))
        assert not isinstance(fused[1], norm_type)
        torch.testing.assert_close(fused(x), expected)
        assert isinstance(revert_sync_batchnorm(model)[1], norm_type)
        for convert in (convert_sync_batchnorm,
                        nn.SyncBatchNorm.convert_sync_batchnorm):
            with pytest.raises(RuntimeError, match='plain SyncBatchNorm'):
                convert(model)
            assert isinstance(model[1], norm_type)  # left as it was
        return
    for convert in (fuse_conv_bn, convert_sync_batchnorm,
                    revert_sync_batchnorm,
                    nn.SyncBatchNorm.convert_sync_batchnorm):
        converted = convert(copy.deepcopy(model))
        assert isinstance(converted[1], norm_type), convert
        assert isinstance(converted[0], nn.Conv2d)
        torch.testing.assert_close(converted(x), expected)
