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
