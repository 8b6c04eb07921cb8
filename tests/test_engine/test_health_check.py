"""HealthCheckHook and NormSchemeHook in real mmengine Runners."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel

from mmbcn.engine.hooks import (HealthCheckHook, NormSchemeHook,
                                SchemeMismatchError, layer_signature,
                                norm_statistics)
from tiny_runner import TinyNet, make_runner


class BNNet(BaseModel):
    """conv + BatchNorm (no BCN): the check is not BCN's only."""

    def __init__(self, _=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(self.norm(self.conv(inputs)).relu().mean((2, 3)))
        if mode == 'loss':
            return dict(loss=(out.squeeze(1) - 1).pow(2).mean())
        return out


def bad_data(at_batch: int):
    data = [dict(inputs=torch.randn(3, 8, 8)) for _ in range(16)]
    data[2 * at_batch]['inputs'][0, 0, 0] = float('nan')
    return data


def test_non_finite_bn_statistics_stop_training(tmp_path):
    runner = make_runner(tmp_path, 8, net=BNNet, data=bad_data(2),
                         custom_hooks=[HealthCheckHook()])
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    message = str(err.value)
    assert 'BatchNorm2d layer "norm" has non-finite running_mean' in message
    assert 'the loss is non-finite (loss=nan)' in message
    assert 'after iteration 3' in message and 'health_check = False' in \
        message
    assert (tmp_path / 'iter_2.pth').exists()
    assert not (tmp_path / 'iter_4.pth').exists()


def test_without_the_hook_the_run_ends_with_nan_weights(tmp_path):
    """What the hook prevents: the same run 'succeeds' and saves NaNs."""
    runner = make_runner(tmp_path, 4, net=BNNet, data=bad_data(2))
    runner.train()
    state = torch.load(tmp_path / 'iter_4.pth', weights_only=False)
    assert not torch.isfinite(state['state_dict']['norm.running_mean']).all()


def test_non_finite_loss_alone_stops_training(tmp_path):
    class LossNet(TinyNet):
        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = super().forward(inputs, data_samples, mode)
            if mode == 'loss' and self.training and self.calls == 2:
                out['loss'] = out['loss'] * float('inf')
            self.calls = getattr(self, 'calls', 0) + (mode == 'loss')
            return out
    runner = make_runner(tmp_path, 8, net=LossNet,
                         custom_hooks=[HealthCheckHook()])
    runner.model.calls = 0
    with pytest.raises(FloatingPointError,
                       match=r'the loss is non-finite \(loss=inf\) after '
                             'iteration 3'):
        runner.train()


def test_checkpoint_with_non_finite_weights_is_not_written(tmp_path):
    hook = HealthCheckHook(interval=100)  # iterations unchecked

    class PoisonWeights(Hook):
        priority = 'LOW'  # after the checks, before CheckpointHook

        def after_train_iter(self, runner, *args, **kwargs):
            if runner.iter + 1 == 4:
                runner.model.head.weight.data.fill_(float('nan'))
    runner = make_runner(tmp_path, 6, custom_hooks=[hook, PoisonWeights()])
    with pytest.raises(FloatingPointError,
                       match=r'1 of \d+ tensors of the model are non-finite '
                             r'at iteration 4 \(e.g. head.weight\)'):
        runner.train()
    assert (tmp_path / 'iter_2.pth').exists()
    assert not (tmp_path / 'iter_4.pth').exists()


def test_statistics_checked_are_every_norms_floating_buffers():
    names = [(n, k) for n, k, _ in norm_statistics(BNNet())]
    assert names == [('norm', 'running_mean'), ('norm', 'running_var')]
    assert ('norm', 'running_mean') in [(n, k) for n, k, _ in
                                        norm_statistics(TinyNet())]
    with pytest.raises(ValueError, match='interval=0'):
        HealthCheckHook(interval=0)


# --------------------------------------------------------------------------
# NormSchemeHook
# --------------------------------------------------------------------------
def scheme_runner(work_dir, net, scheme, max_iters=2, **kwargs):
    runner = make_runner(work_dir, max_iters, net=net,
                         cfg=Config(dict(norm_scheme=scheme)),
                         custom_hooks=[NormSchemeHook()], **kwargs)
    return runner


def test_checkpoints_record_the_scheme(tmp_path):
    scheme_runner(tmp_path, TinyNet, 'bcn-ws').train()
    meta = torch.load(tmp_path / 'iter_2.pth', weights_only=False)['meta']
    assert meta['mmbcn'] == dict(norm_scheme='bcn-ws',
                                 layers=['BCN', 'WSConv2d'])
    assert layer_signature(BNNet()) == ['BatchNorm', 'Conv2d']
    assert layer_signature(nn.SyncBatchNorm(4)) == ['BatchNorm']


def test_loading_another_scheme_is_refused_unless_allowed(tmp_path):
    scheme_runner(tmp_path / 'a', TinyNet, 'bcn-ws').train()
    checkpoint = str(tmp_path / 'a' / 'iter_2.pth')
    runner = scheme_runner(tmp_path / 'b', BNNet, 'bn')
    before = runner.model.head.weight.clone()
    with pytest.raises(SchemeMismatchError) as err:
        runner.load_checkpoint(checkpoint)
    message = str(err.value)
    assert "trained with norm scheme 'bcn-ws' (BCN, WSConv2d)" in message
    assert "builds norm scheme 'bn' (BatchNorm, Conv2d)" in message
    assert torch.equal(runner.model.head.weight, before)  # nothing loaded
    runner.cfg.allow_scheme_mismatch = True
    runner.load_checkpoint(checkpoint)  # loads, with a warning


def test_resume_across_schemes_is_refused(tmp_path):
    scheme_runner(tmp_path, TinyNet, 'bcn-ws').train()
    resumed = scheme_runner(tmp_path, BNNet, 'bn', max_iters=4, resume=True)
    resumed.cfg.allow_scheme_mismatch = True  # not for resuming
    with pytest.raises(SchemeMismatchError,
                       match=r"cannot resume .*'bcn-ws'.*'bn'"):
        resumed.train()


def test_older_checkpoints_compare_by_the_config_text(tmp_path):
    scheme_runner(tmp_path, TinyNet, 'gn-ws').train()
    path = tmp_path / 'iter_2.pth'
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint['meta']['mmbcn']  # as written before the record
    torch.save(checkpoint, path)
    with pytest.raises(SchemeMismatchError, match="'gn-ws'"):
        scheme_runner(tmp_path / 'b', TinyNet, 'gn').load_checkpoint(
            str(path))
    scheme_runner(tmp_path / 'c', TinyNet, 'gn-ws').load_checkpoint(
        str(path))
    # weights without any record (pretrained, converted) load as before
    torch.save(dict(state_dict=checkpoint['state_dict']), path)
    scheme_runner(tmp_path / 'd', TinyNet, 'gn').load_checkpoint(str(path))
