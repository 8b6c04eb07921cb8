"""Norm-only training ("Training BatchNorm and only BatchNorm", Frankle et
al.): every weight stays at its initial value except the affine parameters
of the normalization layers."""
from typing import Tuple

import torch.nn as nn

from ..models.layers.norm_types import NORM_TYPES


def freeze_all_but_norm(model: nn.Module) -> Tuple[int, int]:
    """Set ``requires_grad=False`` on every parameter that does not belong
    to a normalization layer; returns (trainable, total) parameter counts."""
    norm_params = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES)
                   for p in m.parameters(recurse=False)}
    trainable = total = 0
    for p in model.parameters():
        p.requires_grad_(id(p) in norm_params)
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    if trainable == 0:
        raise ValueError('norm-only training: the model has no parameters '
                         'in normalization layers '
                         f'({", ".join(t.__name__ for t in NORM_TYPES)})')
    return trainable, total
