"""Checkpoints save and load through mmengine on this torch."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint, save_checkpoint

from mmbcn import BCN, WSConv2d


class TinyNet(BaseModel):

    def __init__(self):
        super().__init__()
        self.conv = WSConv2d(3, 16, 3, padding=1, bias=False)
        self.norm = BCN(16, num_groups=4)
        self.head = nn.Linear(16, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feat = self.norm(self.conv(inputs)).relu().mean((2, 3))
        out = self.head(feat).squeeze(1)
        if mode == 'loss':
            return dict(loss=(out - 1).pow(2).mean())
        return out


def make_runner(work_dir, max_iters, resume=False):
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(3, 8, 8)) for _ in range(16)]
    return Runner(
        model=TinyNet(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), resume=resume)


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
