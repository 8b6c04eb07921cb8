"""torch.jit.script of mmbcn's layers: the scripted module computes what
the eager module does (outputs, estimate updates, gradients) in training
and eval, and survives torch.jit.save / torch.jit.load."""
import copy
import io

import pytest
import torch
import torch.nn as nn

import mmbcn  # noqa: F401 (registers the layers)
from mmbcn.models.layers import BCN, ScaledWSConv2d, WSConv2d
from mmbcn.models.layers.centered_conv import CenteredConv2d
from norm_cases import NORMS, build_norm

CONVS = {
    'ws': lambda i, o, k: WSConv2d(i, o, k, padding=k // 2),
    'ws-std-bias': lambda i, o, k: WSConv2d(i, o, k, bias=True,
                                            eps_mode='std'),
    'ws-reflect': lambda i, o, k: WSConv2d(i, o, k, padding=k // 2,
                                           padding_mode='reflect'),
    'scaled-ws': lambda i, o, k: ScaledWSConv2d(i, o, k, gain_init=0.7),
    'centered': lambda i, o, k: CenteredConv2d(i, o, k),
}
#: not scriptable (docs/modes.md): the zoo layers' forwards use Python-only
#: constructs (distributed helpers, custom autograd Functions, the CBN conv
#: tracker, Union-typed eps)
NOT_SCRIPTABLE = frozenset({'frn', 'brn', 'mabn', 'cbn', 'cbn-pool'})
SCRIPTED_NORMS = sorted(set(NORMS) - NOT_SCRIPTABLE)


def small(case, conv):
    torch.manual_seed(0)
    return nn.Sequential(CONVS[conv](3, 8, 3), build_norm(case, 8),
                         nn.ReLU(), CONVS[conv](8, 8, 1),
                         build_norm(case, 8, seed=1))


#: float64: the scripted ops and eager's kernels (BCN's fused C++ passes)
#: agree to 1e-6; float32: to their rounding (several steps, gradients
#: summed in another order)
TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-4}


def close(got, expected, name=''):
    """Equal to the dtype's tolerance relative to the tensor's scale
    (gradients of WS weights reach 1e3)."""
    tol = TOLERANCE.get(expected.dtype, 1e-6)
    scale = max(1., float(expected.abs().max())) if expected.numel() else 1.
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * scale,
                               msg=lambda m: f'{name}: {m}')


def roundtrip(scripted):
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def compare(model, scripted, training, steps=3, channels_last=False):
    model.train(training)
    scripted.train(training)
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = (torch.randn(2, 3, 10, 10, generator=gen) * 2 + 0.5).to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        xs = x.clone().requires_grad_()
        x.requires_grad_()
        expected, got = model(x), scripted(xs)
        close(got, expected, 'output')
        assert got.is_contiguous(memory_format=torch.channels_last) == \
            expected.is_contiguous(memory_format=torch.channels_last)
        dy = torch.randn(expected.shape, generator=gen).to(dtype)
        expected.backward(dy)
        got.backward(dy)
        close(xs.grad, x.grad, 'input gradient')
    params = dict(model.named_parameters())
    for name, p in scripted.named_parameters():
        close(p.grad, params[name].grad, name)
    state = model.state_dict()
    for name, value in scripted.state_dict().items():
        close(value, state[name], name)


def trainable(case, training):
    return not (case == 'bcn-deferred' and training)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32],
                         ids=['float64', 'float32'])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('conv', sorted(CONVS))
@pytest.mark.parametrize('case', SCRIPTED_NORMS)
def test_script_equals_eager(case, conv, training, dtype):
    if not trainable(case, training):
        pytest.skip('refused: see test_scripted_deferred_training_step')
    model = small(case, conv).to(dtype)
    scripted = torch.jit.script(copy.deepcopy(model))
    compare(model, scripted, training)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('case', SCRIPTED_NORMS)
def test_script_saves_and_loads(case, training):
    if not trainable(case, training):
        pytest.skip('refused: see test_scripted_deferred_training_step')
    model = small(case, 'ws').double()
    loaded = roundtrip(torch.jit.script(copy.deepcopy(model)))
    compare(model, loaded, training)


@pytest.mark.parametrize('case', ['bcn-micro', 'bcn-large', 'evonorm-b0',
                                  'evonorm-s0'])
def test_script_channels_last_and_frozen_statistics(case):
    model = small(case, 'ws').double()
    scripted = torch.jit.script(copy.deepcopy(model))
    compare(model, scripted, True, channels_last=True)
    # norm_eval: the backbones call eval() on the stats_mode switch
    for m in (model, scripted):
        m.train()
        for layer in m.modules():
            if hasattr(layer, 'stats_mode'):
                layer.stats_mode.eval()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    close(scripted(x), model(x))
    for name, value in scripted.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)


@pytest.mark.parametrize('mode', ['micro', 'large'])
def test_scripted_bcn_settings(mode):
    """Warm-up off, per-channel affine, another rate and eps, 3-d input."""
    torch.manual_seed(0)
    model = BCN(12, num_groups=3, mode=mode, update_rate=0.2,
                average_warmup=False, affine='channel', eps=1e-3)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
    scripted = torch.jit.script(copy.deepcopy(model))
    for _ in range(3):
        x = torch.randn(4, 12, 7) * 3 + 1
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-6,
                                   atol=1e-6)
    torch.testing.assert_close(scripted.running_var, model.running_var)
    assert int(scripted.num_batches_tracked) == 3


@pytest.mark.parametrize('case', SCRIPTED_NORMS)
def test_scripted_empty_batch_and_bad_input(case):
    norm = build_norm(case, 8)
    scripted = torch.jit.script(copy.deepcopy(norm)).train(
        trainable(case, True))
    before = copy.deepcopy(scripted.state_dict())
    out = scripted(torch.randn(0, 8, 4, 4))
    assert out.shape == (0, 8, 4, 4)
    out.sum().backward()
    for p in scripted.parameters():
        assert p.grad is not None and not p.grad.any()
    for name, value in scripted.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)
    with pytest.raises(Exception, match=r'input of shape \(2, 5, 3\) is '
                       r'not valid; expected \(N, 8, \*\)'):
        scripted(torch.randn(2, 5, 3))


def test_scripted_deferred_training_step():
    scripted = torch.jit.script(small('bcn-deferred', 'ws')).train()
    with pytest.raises(Exception, match="sync='deferred'"):
        scripted(torch.randn(2, 3, 10, 10))
