"""Cross-Iteration BN across 2 gloo processes equals one process on the
whole batch: current moments, Taylor terms, history and running statistics,
with the conv weight changing between steps."""
import torch
import torch.distributed as dist
import torch.nn as nn

from mmbcn.models.layers import CrossIterationBN, link_cbn_convs
from two_ranks import assert_two_ranks_equal_one_process


def make_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),
                          CrossIterationBN(4, buffer_num=2, burnin_iters=1))
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.5, 1.5, 4))
        model[1].bias.copy_(torch.linspace(-1, 1, 4))
    link_cbn_convs(model)
    return model


def make_data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 3, 4, 4, generator=g) + 0.5,
             torch.randn(2, 4, 4, 4, generator=g)) for _ in range(5)]


def sgd_step(model, step):
    """The same weight update on every rank (the summed gradient so far)."""
    grad = model[0].weight.grad.clone()
    if dist.is_initialized():
        dist.all_reduce(grad)
    with torch.no_grad():
        model[0].weight -= 0.2 * grad


def test_two_ranks_equal_one_process(tmp_path):
    assert_two_ranks_equal_one_process(make_layer, make_data, tmp_path,
                                       after_step=sgd_step)
