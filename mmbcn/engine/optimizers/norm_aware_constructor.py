"""mmengine's default optimizer constructor, with mmbcn's norm layers given
the norm rules.

``DefaultOptimWrapperConstructor`` applies ``paramwise_cfg``'s
``norm_decay_mult`` (and exempts norm biases from ``bias_lr_mult`` /
``bias_decay_mult``) to the parameters of modules that are BatchNorm,
InstanceNorm, GroupNorm or LayerNorm, a fixed list. Under one config GN's
affine would then be exempt from weight decay and BCN's four parameters or
EvoNorm's three would not. This constructor hands each parameter of an mmbcn
norm to the default rules as the parameter of a GroupNorm, so every
rule (custom keys first, then norm, bias, depth-wise, flat) is mmengine's,
unchanged, and a model gets the same groups with any norm scheme.

Use it with ``optim_wrapper = dict(constructor=
'NormAwareOptimWrapperConstructor', ...)``; it is registered in mmengine's
root registry, so mmdet's and mmseg's scopes find it.
"""
from typing import List, Optional, Union

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ...models.layers.norm_types import MMBCN_NORM_TYPES


def _as_group_norm(name: str, param: nn.Parameter) -> nn.GroupNorm:
    """A GroupNorm (never run) whose only parameter is ``param``, as
    ``name``."""
    stand_in = nn.GroupNorm.__new__(nn.GroupNorm)
    nn.Module.__init__(stand_in)
    stand_in._parameters = {name: param}
    return stand_in


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class NormAwareOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` that counts mmbcn's norms
    (:data:`~mmbcn.models.layers.MMBCN_NORM_TYPES`) as norms, and their
    ``*_bias`` parameters (BCN's ``batch_bias``) as biases."""

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None
                   ) -> None:
        if not isinstance(module, MMBCN_NORM_TYPES):
            super().add_params(params, module, prefix, is_dcn_module)
            return
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        for name, param in module.named_parameters(recurse=False):
            full_name = f'{prefix}.{name}' if prefix else name
            # a bias by mmengine's name rule, unless a custom key names it
            alias = name
            if name.endswith('bias') and \
                    not any(key in full_name for key in custom_keys):
                alias = 'bias'
            super().add_params(params, _as_group_norm(alias, param), prefix,
                               is_dcn_module)
        for name, child in module.named_children():
            self.add_params(params, child, f'{prefix}.{name}' if prefix
                            else name, is_dcn_module)
