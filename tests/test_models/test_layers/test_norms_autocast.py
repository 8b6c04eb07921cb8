"""Under autocast the new normalization layers compute in float32 (as
GroupNorm does) and return float32, equal to the float32 forward."""
import copy

import pytest
import torch
import torch.nn as nn

from mmbcn.models.layers import (FRN, MABN, BatchRenorm, CrossIterationBN,
                                 PRepBN, link_cbn_convs)


def conv_cbn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                          CrossIterationBN(8, buffer_num=2))
    link_cbn_convs(model)
    return model


def conv_then(norm):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), norm)


@pytest.mark.parametrize('make, shape', [
    (lambda: conv_then(FRN(8)), (2, 3, 6, 6)),
    (lambda: conv_then(BatchRenorm(8)), (2, 3, 6, 6)),
    (lambda: conv_then(MABN(8, buffer_size=2, warmup_iters=0)),
     (2, 3, 6, 6)),
    (conv_cbn, (2, 3, 6, 6)),
    (lambda: nn.Sequential(nn.Linear(5, 8), PRepBN(8, lam=0.5)), (2, 4, 5)),
])
def test_float32_under_autocast(make, shape):
    model = make()
    twin = copy.deepcopy(model)
    if isinstance(model[1], CrossIterationBN):
        link_cbn_convs(twin)
    for _ in range(3):  # CBN pools from the second step on
        x = torch.randn(*shape) * 30
        with torch.autocast('cpu', dtype=torch.bfloat16):
            inner = model[0](x)
            y = model[1](inner)
            twin_inner = twin[0](x)
        assert inner.dtype == torch.bfloat16 and y.dtype == torch.float32
        y.sum().backward()
        # the float32 forward on the layer's (bfloat16) input
        if isinstance(twin[1], CrossIterationBN):
            expected = twin[1]._forward(twin_inner.float(), twin[0])
        else:
            expected = twin[1](twin_inner.float())
        expected.sum().backward()
        torch.testing.assert_close(y, expected)
    torch.testing.assert_close(model[0].weight.grad, twin[0].weight.grad)
