"""paramwise_cfg's norm and bias rules give mmbcn's norms the groups they
give GroupNorm (mmengine's DefaultOptimWrapperConstructor as the contract)."""
import pytest
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

import mmbcn  # noqa: F401 (registers the constructor)
from norm_cases import BATCHNORMS, NORMS, build_norm

PARAMWISE = [dict(norm_decay_mult=0.), dict(bias_decay_mult=0.),
             dict(norm_decay_mult=0., bias_decay_mult=0.5, bias_lr_mult=2.),
             dict(flat_decay_mult=0.)]


def groups(constructor_type, module, paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=constructor_type,
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(
            type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        paramwise_cfg=paramwise))
    wrapper = constructor(module)
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            by_param[id(p)] = (group['lr'], group['weight_decay'])
    return {name: by_param[id(p)] for name, p in module.named_parameters()}


@pytest.mark.parametrize('paramwise', PARAMWISE)
@pytest.mark.parametrize('case', sorted(NORMS))
def test_mmbcn_norm_gets_groupnorms_groups(case, paramwise):
    gn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8),
                       nn.Conv2d(8, 8, 1))
    ours = nn.Sequential(nn.Conv2d(3, 8, 3), build_norm(case, 8),
                         nn.Conv2d(8, 8, 1))
    ref = groups('DefaultOptimWrapperConstructor', gn, paramwise)
    got = groups('NormAwareOptimWrapperConstructor', ours, paramwise)
    expected = {}
    for name in got:
        layer, attr = name.split('.')
        # every parameter of the norm gets what GN's weight (or bias) gets
        gn_name = f'{layer}.bias' if attr.endswith('bias') else \
            f'{layer}.weight'
        expected[name] = ref[gn_name]
    assert got == expected
    # the default constructor alone does not (the test can fail); it does
    # for the _BatchNorm subclasses, which mmengine counts as norms
    if 'norm_decay_mult' in paramwise and case not in BATCHNORMS:
        assert groups('DefaultOptimWrapperConstructor', ours,
                      paramwise) != expected


def test_custom_keys_come_first():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), build_norm('bcn-micro', 8))
    got = groups('NormAwareOptimWrapperConstructor', net, dict(
        norm_decay_mult=0., bias_decay_mult=0.,
        custom_keys={'1.batch_bias': dict(decay_mult=3.)}))
    assert got['1.batch_bias'] == (0.1, pytest.approx(3e-4))
    assert got['1.bias'] == got['1.batch_weight'] == (0.1, 0.)


def test_other_modules_as_the_default_constructor():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
                        nn.Conv2d(8, 8, 3, groups=8), nn.Linear(2, 2))
    paramwise = dict(norm_decay_mult=0., bias_decay_mult=0.,
                     dwconv_decay_mult=0.5)
    assert groups('NormAwareOptimWrapperConstructor', net, paramwise) == \
        groups('DefaultOptimWrapperConstructor', net, paramwise)
    assert issubclass(OPTIM_WRAPPER_CONSTRUCTORS.get(
        'NormAwareOptimWrapperConstructor'), DefaultOptimWrapperConstructor)
