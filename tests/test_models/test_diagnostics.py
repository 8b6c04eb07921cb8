"""Elimination-singularity diagnostics."""
import json

import pytest
import torch
import torch.nn as nn

from mmbcn.models.diagnostics import SingularityProbe, channel_stats
from tiny_runner import make_runner


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.GroupNorm(4, 8), nn.ReLU())


def test_forced_dead_channel_is_reported():
    model = net().train()
    with torch.no_grad():
        model[1].bias[2] = -50.0  # channel 2: pre-activation always < 0
        model[1].bias[5] = -2.1   # channel 5: near elimination, ~2% active
    with SingularityProbe(model) as probe:
        model(torch.randn(16, 3, 8, 8))
    stats = {s.layer: s for s in probe.summary()}
    bn = stats['1']
    assert bn.dead_fraction == pytest.approx(1 / 8)
    assert bn.near_fraction == pytest.approx(2 / 8)
    assert bn.min_distance == pytest.approx(-50.0, rel=1e-3)  # beta/|gamma|
    assert stats['4'].dead_fraction == 0.0


def test_healthy_network_reports_nothing():
    model = net().train()
    with SingularityProbe(model) as probe:
        model(torch.randn(4, 3, 8, 8))
    for s in probe.summary():
        assert s.dead_fraction == 0 and s.near_fraction == 0, s
    # BN at init: every channel has zero mean over the batch
    assert abs(probe.summary()[0].mean_distance) < 1e-5


def test_constant_channel_counts_as_eliminated():
    z = torch.zeros(2, 3, 4, 4)
    z[:, 1] = torch.randn(2, 4, 4)
    z[:, 2] = 1.0
    s = channel_stats(z)
    assert s.dead_fraction == pytest.approx(1 / 3)
    assert s.min_distance < -1e5


def test_hook_does_not_change_training(tmp_path):
    plain = make_runner(tmp_path / 'plain', 6)
    plain.train()
    probed = make_runner(
        tmp_path / 'probed', 6,
        custom_hooks=[dict(type='SingularityHook', interval=2)])
    probed.train()
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(value, probed.model.state_dict()[key])
    lines = (tmp_path / 'probed' / 'singularity.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted({r['iter'] for r in records}) == [1, 2, 4, 6]
    assert {r['layer'] for r in records} == {'norm'}
    logged = probed.message_hub.get_scalar('train/singularity/dead_fraction')
    assert logged is not None
