"""BCN hooks inside a real mmengine Runner."""
import pytest
import torch

from mmbcn.engine.hooks import BCNUpdateRateHook
from tiny_runner import make_runner


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
