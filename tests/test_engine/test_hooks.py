"""BCN hooks inside a real mmengine Runner."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmbcn.engine.hooks import BCNUpdateRateHook
from tiny_runner import TinyNet, make_runner


def test_update_rate_schedule_and_resume(tmp_path):
    hook = dict(type='BCNUpdateRateHook', rate=0.02, warmup_iters=4,
                warmup_start=0.5)
    runner = make_runner(tmp_path / 'a', 6, custom_hooks=[hook],
                         bcn_cfg=dict(average_warmup=False))
    runner.train()
    assert float(runner.model.norm.update_rate) == pytest.approx(0.02)
    sched = BCNUpdateRateHook(0.02, 4, 0.5)
    assert [round(sched.rate_at(i), 4) for i in range(6)] == \
        [0.5, 0.38, 0.26, 0.14, 0.02, 0.02]
    # the estimates follow the scheduled rates: replay them by hand
    full = runner.model.norm.running_mean.clone()
    part = make_runner(tmp_path / 'b', 2, custom_hooks=[hook],
                       bcn_cfg=dict(average_warmup=False))
    part.train()
    assert float(part.model.norm.update_rate) == pytest.approx(0.38)
    resumed = make_runner(tmp_path / 'b', 6, resume=True,
                          custom_hooks=[hook],
                          bcn_cfg=dict(average_warmup=False))
    resumed.train()
    torch.testing.assert_close(resumed.model.norm.running_mean, full)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match='rate=0'):
        BCNUpdateRateHook(rate=0)
    with pytest.raises(ValueError, match='warmup_iters=-1'):
        BCNUpdateRateHook(warmup_iters=-1)


def test_health_check_names_layer_and_iteration(tmp_path):
    data = [dict(inputs=torch.randn(3, 8, 8)) for _ in range(16)]
    data[6]['inputs'][0, 0, 0] = float('inf')  # iteration 4 (batch 3)
    runner = make_runner(tmp_path, 8, data=data,
                         custom_hooks=[dict(type='BCNHealthCheckHook')])
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'BCN layer "norm"' in msg and 'after iteration 4' in msg
    # the checkpoint of iteration 4 was not written with bad statistics
    assert not (tmp_path / 'iter_4.pth').exists()
    assert (tmp_path / 'iter_2.pth').exists()


def test_deferred_hook_one_collective_per_iteration(tmp_path):
    runner = make_runner(tmp_path, 4, bcn_cfg=dict(sync='deferred'),
                         custom_hooks=[dict(type='BCNDeferredSyncHook')])
    runner.train()
    norm = runner.model.norm
    assert len(norm.deferred) == 0  # flushed every iteration
    assert norm.num_batches_tracked.item() == 4
    hook = [h for h in runner.hooks
            if type(h).__name__ == 'BCNDeferredSyncHook'][0]
    assert hook.collectives == 0  # one process: nothing to reduce


class NoisyData(torch.utils.data.Dataset):
    """Inputs with a random augmentation (numpy's global generator)."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        x = torch.linspace(-1, 1, 192).reshape(3, 8, 8) * (index + 1)
        return dict(inputs=x * float(np.random.uniform(0.5, 1.5)))


class DropoutNet(TinyNet):
    """Draws from torch's generator in training (as RoI samplers do)."""

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = F.dropout(inputs, 0.5, self.training)
        return super().forward(inputs, data_samples, mode)


def resumed_run(work_dir, hooks):
    """6 iterations: 2, then resumed (the loop skips the 2 batches)."""
    kwargs = dict(data=NoisyData(), net=DropoutNet, custom_hooks=hooks)
    make_runner(work_dir, 2, **kwargs).train()
    runner = make_runner(work_dir, 6, resume=True, **kwargs)
    runner.train()
    return runner


def test_rng_state_hook_makes_resume_exact(tmp_path):
    hooks = [dict(type='RNGStateHook')]
    full = make_runner(tmp_path / 'full', 6, data=NoisyData(),
                       net=DropoutNet, custom_hooks=hooks)
    full.train()
    resumed = resumed_run(tmp_path / 'part', hooks)
    states = torch.load(tmp_path / 'part' / 'iter_2.pth',
                        weights_only=False)['rng_states']
    assert len(states) == 1 and set(states[0]) >= {'python', 'numpy',
                                                   'torch'}
    expected = full.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    # without the states, dropout after the resume draws other numbers
    plain = resumed_run(tmp_path / 'plain', None)
    assert not torch.equal(plain.model.norm.running_mean,
                           full.model.norm.running_mean)


def test_rng_state_hook_warns_without_states(tmp_path):
    make_runner(tmp_path, 2, data=NoisyData()).train()  # no hook: no states
    runner = make_runner(tmp_path, 4, resume=True, data=NoisyData(),
                         custom_hooks=[dict(type='RNGStateHook')])
    runner.train()
    log = sorted(tmp_path.glob('*/*.log'))[-1].read_text()
    assert 'RNGStateHook: the checkpoint resumed from has none' in log
