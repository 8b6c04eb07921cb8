"""BatchRenorm across 2 gloo processes equals one process on the whole
batch (moments, r / d corrections and running statistics)."""
import torch

from mmbcn.models.layers import BatchRenorm
from two_ranks import assert_two_ranks_equal_one_process


def make_layer():
    layer = BatchRenorm(6, momentum=0.3, r_max=1.5, d_max=0.5)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 1.5, 6))
        layer.bias.copy_(torch.linspace(-1, 1, 6))
    return layer


def make_data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 6, 3, 4, generator=g) * 2 + 1,
             torch.randn(2, 6, 3, 4, generator=g)) for _ in range(3)]


def test_two_ranks_equal_one_process(tmp_path):
    assert_two_ranks_equal_one_process(make_layer, make_data, tmp_path)
