"""RepBN / PRepBN (SLAB) against the paper's formulas."""
import pytest
import torch
from mmcv.cnn import build_norm_layer
from torch.func import functional_call

from mmbcn.engine.hooks import PRepBNScheduleHook
from mmbcn.models.layers import MMBCN_NORM_TYPES, PRepBN, RepBN
from norm_checks import (assert_empty_batch, assert_eval_keeps_buffers,
                         assert_state_round_trip, randomize)
from tiny_runner import TinyNet, make_runner


def ref_bn_train(x, w, b, eps):
    """Per channel over every token of the batch (biased variance)."""
    rows = x.reshape(-1, x.shape[-1])
    mu = rows.sum(0) / rows.shape[0]
    var = ((rows - mu) ** 2).sum(0) / rows.shape[0]
    return (x - mu) / torch.sqrt(var + eps) * w + b, mu, \
        var * rows.shape[0] / (rows.shape[0] - 1)


def ref_ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def test_repbn_init_and_training_match_reference():
    layer = RepBN(6)
    assert layer.alpha.shape == (1, ) and float(layer.alpha.detach()) == 1.0
    randomize(layer)
    bn = layer.bn
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(2, 5, 6) * 2 + 1
    ref, mu, var_u = ref_bn_train(x, bn.weight.detach(), bn.bias.detach(),
                                  1e-5)
    torch.testing.assert_close(layer(x), ref + layer.alpha.detach() * x)
    torch.testing.assert_close(bn.running_mean, rm + 0.1 * (mu - rm))
    torch.testing.assert_close(bn.running_var, rv + 0.1 * (var_u - rv))
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize('lam', [0.0, 0.3, 1.0])
def test_prepbn_blend_matches_reference(lam):
    layer = randomize(PRepBN(6, lam=lam))
    x = torch.randn(2, 5, 6) * 2 + 1
    ln = ref_ln(x, layer.ln.weight.detach(), layer.ln.bias.detach(), 1e-5)
    bn, _, _ = ref_bn_train(x, layer.repbn.bn.weight.detach(),
                            layer.repbn.bn.bias.detach(), 1e-5)
    rep = bn + layer.repbn.alpha.detach() * x
    torch.testing.assert_close(layer(x), lam * ln + (1 - lam) * rep)
    # at lam = 1 the BN branch does not run (no statistics update)
    tracked = int(layer.repbn.bn.num_batches_tracked)
    assert tracked == (0 if lam == 1 else 1)


def test_frozen_inner_batchnorm_uses_running_statistics():
    layer = randomize(RepBN(6))
    layer.bn.eval()  # what norm_eval does to every _BatchNorm
    x = torch.randn(2, 5, 6)
    before = layer.bn.running_mean.clone()
    bn = layer.bn
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-5) * \
        bn.weight + bn.bias + layer.alpha * x
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(bn.running_mean, before)


def test_gradcheck():
    layer = randomize(PRepBN(4, lam=0.4)).double()
    names = [n for n, _ in layer.named_parameters()]
    buffers = dict(layer.named_buffers())

    def f(x, *params):
        state = {n: b.clone() for n, b in buffers.items()}
        state.update(zip(names, params))
        return functional_call(layer, state, (x, ))

    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True)
              for p in layer.parameters()]
    assert len(params) == 5  # ln w, b; alpha; bn w, b
    assert torch.autograd.gradcheck(f, (x, *params))


def test_eval_reparameterizes_into_one_batchnorm():
    layer = randomize(PRepBN(6, lam=0.5))
    for _ in range(3):
        layer(torch.randn(2, 5, 6) * 2 + 1)
    layer.set_lam(0)
    layer.eval()
    x = torch.randn(3, 4, 6)
    expected = layer(x)
    bn = layer.repbn.bn
    eval_ref = (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-5) * \
        bn.weight + bn.bias + layer.repbn.alpha * x
    torch.testing.assert_close(expected, eval_ref)
    single = layer.reparameterize()
    assert type(single) is torch.nn.BatchNorm1d and not single.training
    torch.testing.assert_close(single(x.reshape(-1, 6)).reshape(x.shape),
                               expected)
    layer.set_lam(0.2)
    with pytest.raises(ValueError, match='lam=0.2'):
        layer.reparameterize()


def test_contracts_and_round_trip():
    layer = randomize(PRepBN(6, lam=0.5))
    before = layer.repbn.bn.running_mean.clone()
    assert_empty_batch(layer, (2, 5, 6))
    torch.testing.assert_close(layer.repbn.bn.running_mean, before)
    x = torch.randn(2, 5, 6)
    layer(x)
    layer.set_lam(0.25)
    assert_eval_keeps_buffers(layer, x)
    fresh = PRepBN(6)
    assert_state_round_trip(layer, fresh, x)
    assert float(fresh.lam) == 0.25


def test_schedule_hook_and_runner(tmp_path):
    hook = PRepBNScheduleHook(total_iters=6, warmup_iters=2)
    assert [hook.lam_at(i) for i in (0, 1, 2, 3, 4, 6, 8)] == \
        [1, 1, 1, 0.75, 0.5, 0, 0]

    class Net(TinyNet):

        def __init__(self, cfg=None):
            super().__init__()
            self.tok = PRepBN(16)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            feat = self.conv(inputs).flatten(2).transpose(1, 2)
            out = self.head(self.tok(feat).mean(1)).squeeze(1)
            if mode == 'loss':
                return dict(loss=(out - 1).pow(2).mean())
            return out

    cfg = dict(type='PRepBNScheduleHook', total_iters=4)
    runner = make_runner(tmp_path, 3, custom_hooks=[cfg], net=Net)
    runner.train()
    # the last iteration (2) ran at 0.5; the model ends at the next one's
    assert float(runner.model.tok.lam) == pytest.approx(0.25)
    runner = make_runner(tmp_path / 'full', 4, custom_hooks=[
        dict(type='PRepBNScheduleHook')], net=Net)
    runner.train()  # total_iters = max_iters = 4: ends at RepBN
    assert float(runner.model.tok.lam) == 0
    runner.model.tok.reparameterize()


def test_registered_and_built_by_mmcv():
    assert PRepBN in MMBCN_NORM_TYPES and RepBN in MMBCN_NORM_TYPES
    _, layer = build_norm_layer(dict(type='PRepBN'), 8)
    assert isinstance(layer, PRepBN) and float(layer.lam) == 1
    _, layer = build_norm_layer(dict(type='RepBN', requires_grad=False), 8)
    assert not any(p.requires_grad for p in layer.parameters())


@pytest.mark.parametrize('cls, kwargs, match', [
    (PRepBN, dict(num_features=0), 'num_features=0'),
    (PRepBN, dict(num_features=4, lam=1.5), 'lam=1.5'),
    (RepBN, dict(num_features=4, eps=0), 'eps=0'),
    (RepBN, dict(num_features=4, momentum=0), 'momentum=0'),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_input_and_hook_arguments():
    with pytest.raises(ValueError, match=r'expected \(\.\.\., 4\) tokens'):
        PRepBN(4)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match='total_iters=2'):
        PRepBNScheduleHook(total_iters=2, warmup_iters=2)
