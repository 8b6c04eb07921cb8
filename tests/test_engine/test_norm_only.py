"""Norm-only training freezes everything but the norm affine parameters."""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule

from mmbcn.engine import freeze_all_but_norm


def test_freeze_counts_and_training_changes_only_norms():
    torch.manual_seed(0)
    model = nn.Sequential(
        ConvModule(3, 8, 3, padding=1, conv_cfg=dict(type='WSConv2d'),
                   norm_cfg=dict(type='BCN', num_groups=4)),
        ConvModule(8, 8, 3, padding=1, norm_cfg=dict(type='GN',
                                                     num_groups=2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    trainable, total = freeze_all_but_norm(model)
    # BCN: 8 + 8 batch affine + 4 + 4 group affine; GN: 8 + 8
    assert trainable == 40
    assert total == sum(p.numel() for p in model.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                          lr=0.5)
    model(torch.randn(4, 3, 6, 6)).square().sum().backward()
    opt.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        assert changed == p.requires_grad, name
        assert p.requires_grad == ('norm' in name or 'bcn' in name
                                   or 'gn' in name)


def test_model_without_norms_is_an_error():
    with pytest.raises(ValueError, match='no parameters in normalization'):
        freeze_all_but_norm(nn.Sequential(nn.Conv2d(3, 4, 1)))


def test_config_switch_through_the_tools(tmp_path):
    """norm_only = True in a config: the runner trains only norm affines
    and logs the trainable count."""
    from mmengine.config import Config

    from mmbcn.apis import load_config
    from tiny_runner import make_runner
    cfg = load_config(Config(dict(norm_only=True)), work_dir=str(tmp_path))
    assert cfg.custom_hooks == [dict(type='NormOnlyHook')]
    assert cfg.find_unused_parameters is True
    runner = make_runner(tmp_path, 2, custom_hooks=cfg.custom_hooks)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    assert torch.equal(before['conv.weight'], after['conv.weight'])
    assert torch.equal(before['head.weight'], after['head.weight'])
    assert not torch.equal(before['norm.batch_weight'],
                           after['norm.batch_weight'])
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'norm-only training: 40 of' in log
