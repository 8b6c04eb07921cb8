"""Checkpoints save and load through mmengine on this torch."""
import torch
from mmengine.runner import load_checkpoint, save_checkpoint

from tiny_runner import TinyNet, make_runner


def test_state_dict_round_trip(tmp_path):
    model = TinyNet()
    model.train()
    for _ in range(3):
        model(torch.randn(2, 3, 8, 8))
    path = str(tmp_path / 'model.pth')
    save_checkpoint(model.state_dict(), path)
    restored = TinyNet()
    load_checkpoint(restored, path, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    for key in ('running_mean', 'running_var', 'num_batches_tracked',
                'update_rate'):
        assert f'norm.{key}' in restored.state_dict()
    assert restored.norm.num_batches_tracked.item() == 3


def test_runner_resume_equals_uninterrupted(tmp_path):
    full = make_runner(tmp_path / 'full', 6)
    full.train()
    part = make_runner(tmp_path / 'part', 4)
    part.train()
    resumed = make_runner(tmp_path / 'part', 6, resume=True)
    resumed.train()  # loads iter_4.pth: weights_only load with mmengine types
    assert resumed.iter == 6
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert resumed.model.norm.num_batches_tracked.item() == 12 // 2
