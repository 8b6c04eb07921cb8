"""A tiny WS + BCN network and an mmengine Runner for it (test helper)."""
import itertools
import os

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmbcn import BCN, WSConv2d


class TinyNet(BaseModel):

    def __init__(self, bcn_cfg=None):
        super().__init__()
        self.conv = WSConv2d(3, 16, 3, padding=1, bias=False)
        self.norm = BCN(16, num_groups=4, **(bcn_cfg or {}))
        self.head = nn.Linear(16, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feat = self.norm(self.conv(inputs)).relu().mean((2, 3))
        out = self.head(feat).squeeze(1)
        if mode == 'loss':
            return dict(loss=(out - 1).pow(2).mean())
        return out


# mmengine names a Runner's logger by its start time (to the second): two
# runners made in one second would share one logger and log file
_RUN_IDS = itertools.count()


def make_runner(work_dir, max_iters, resume=False, bcn_cfg=None,
                custom_hooks=None, data=None, net=TinyNet, max_keep_ckpts=-1,
                cfg=None):
    torch.manual_seed(0)
    if data is None:
        data = [dict(inputs=torch.randn(3, 8, 8)) for _ in range(16)]
    return Runner(
        model=net(bcn_cfg), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False,
                                           max_keep_ckpts=max_keep_ckpts),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks, randomness=dict(seed=0), resume=resume,
        cfg=cfg,
        experiment_name=f'tiny_{os.getpid()}_{next(_RUN_IDS)}')
