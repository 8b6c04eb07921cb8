"""PRepBN's BatchNorm across 2 gloo processes equals one process on the
whole batch of tokens."""
import torch

from mmbcn.models.layers import PRepBN
from two_ranks import assert_two_ranks_equal_one_process


def make_layer():
    torch.manual_seed(0)
    layer = PRepBN(6, lam=0.4, momentum=0.3)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape) + 0.5)
    return layer


def make_data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 5, 6, generator=g) * 2 + 1,
             torch.randn(2, 5, 6, generator=g)) for _ in range(3)]


def test_two_ranks_equal_one_process(tmp_path):
    assert_two_ranks_equal_one_process(make_layer, make_data, tmp_path)
