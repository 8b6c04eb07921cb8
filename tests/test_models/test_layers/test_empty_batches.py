"""Inputs with no elements (a mask head with zero positive RoIs): an empty
output, zero gradients and unchanged estimates, as GroupNorm and BatchNorm
give."""
import copy

import pytest
import torch
import torch.nn as nn

from norm_cases import NORMS, build_norm


def references():
    return {'GroupNorm': nn.GroupNorm(4, 8), 'BatchNorm': nn.BatchNorm2d(8)}


@pytest.mark.parametrize('shape', [(0, 8, 7, 7), (0, 8), (2, 8, 0, 5)])
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('case', sorted(NORMS))
def test_empty_input_like_groupnorm(case, training, shape):
    layer = build_norm(case, 8).train(training)
    before = copy.deepcopy(layer.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.sum().backward()
    assert x.grad.shape == x.shape
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert torch.count_nonzero(p.grad) == 0, name
    for name, value in layer.state_dict().items():
        assert torch.equal(value, before[name]), name
    if getattr(layer, 'deferred', None) is not None:
        assert len(layer.deferred) == 0
    # the contract, from torch's own norms
    for ref in references().values():
        if shape[0] == 0 and len(shape) == 4:
            ref.train(training)
            out = ref(torch.randn(*shape, requires_grad=True))
            out.sum().backward()
            assert out.shape == x.shape
            assert torch.count_nonzero(ref.weight.grad) == 0


@pytest.mark.parametrize('case', sorted(NORMS))
def test_empty_then_full_batch_trains_as_without_it(case):
    """An empty batch between two steps changes nothing the next step sees."""
    a, b = build_norm(case, 8), build_norm(case, 8)
    xs = [torch.randn(2, 8, 5, 5) for _ in range(2)]
    a(xs[0])
    b(xs[0])
    b(torch.randn(0, 8, 5, 5))
    torch.testing.assert_close(b(xs[1]), a(xs[1]), rtol=0, atol=0)
