"""The normalization schemes, and the one function that applies them.

A scheme is a pair (norm_cfg, conv_cfg) plus whether it normalizes the whole
detector ("-all", as mmdet's gn / gn+ws configs: backbone, neck, RoI bbox and
mask heads) or only where the base config already normalizes (the backbone,
and mmseg's decode / auxiliary heads).

Apply one to any mmdet / mmseg model config::

    apply_scheme(cfg.model, 'bcn-ws', scope='mmdet')

or name it in a config file (``norm_scheme = 'bcn-ws'``) or on the command
line (``tools/train.py CONFIG --norm bcn-ws``); :func:`apply_config_scheme`
handles both. A scheme may also be a dict with overrides of its layers'
arguments: ``dict(name='bcn-ws', norm=dict(num_groups=16))``.

Rules, for every module config in the model (found by walking the dict):

- a module that takes ``norm_cfg`` gets the scheme's ``norm_cfg`` if its
  config already has a norm, if it is the backbone, or, for "-all" schemes,
  always; it then also gets the scheme's ``conv_cfg`` where it takes one;
- for "-all" schemes a ``Shared2FCBBoxHead`` becomes mmdet's
  ``Shared4Conv1FCBBoxHead`` (four normalized convs before the fc), as in
  mmdet's gn+ws configs;
- modules without ``norm_cfg`` (RPN head, losses, ...) are left alone.
"""
import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from mmengine.config import Config, ConfigDict

from .scope import check_scope, config_scope, lookup


@dataclass(frozen=True)
class Scheme:
    name: str
    norm_cfg: Dict[str, Any]
    conv_cfg: Optional[Dict[str, Any]] = None
    normalize_all: bool = True
    description: str = ''
    notes: Dict[str, str] = field(default_factory=dict)


_BN = dict(type='BN', requires_grad=True)
_SYNCBN = dict(type='SyncBN', requires_grad=True)
_GN = dict(type='GN', num_groups=32, requires_grad=True)
_BCN = dict(type='BCN', num_groups=32, requires_grad=True)
_WS = dict(type='WSConv2d')
_SWS = dict(type='ScaledWSConv2d')
_AFFINE = dict(type='ChannelAffine', requires_grad=True)
_EVO_B0 = dict(type='EvoNormB0', requires_grad=True)
_EVO_S0 = dict(type='EvoNormS0', num_groups=32, requires_grad=True)

SCHEMES: Dict[str, Scheme] = {s.name: s for s in (
    Scheme('bn', _BN, None, False,
           'BatchNorm with per-GPU statistics (the micro-batch failure case)'),
    Scheme('syncbn', _SYNCBN, None, False,
           'BatchNorm with statistics synchronized across GPUs (CUDA/NCCL)'),
    Scheme('gn', _GN, None, True, 'GroupNorm (32 groups) everywhere'),
    Scheme('gn-ws', _GN, _WS, True,
           'GroupNorm + Weight Standardization everywhere'),
    Scheme('bcn', _BCN, None, True,
           'Batch-Channel Normalization (micro-batch) everywhere'),
    Scheme('bcn-ws', _BCN, _WS, True,
           'Batch-Channel Normalization + Weight Standardization everywhere'),
    Scheme('sws', _AFFINE, _SWS, True,
           'Scaled Weight Standardization, no normalization (per-channel '
           'affine in place of each norm; zero-init residuals as SkipInit)'),
    Scheme('evonorm-b0', _EVO_B0, None, True,
           'EvoNorm-B0 (batch variance, running variance in eval)'),
    Scheme('evonorm-s0', _EVO_S0, None, True,
           'EvoNorm-S0 (sigmoid gate, group variance, batch-independent)'),
)}


def scheme_names():
    return tuple(SCHEMES)


def get_scheme(scheme: Union[str, Dict, Scheme]) -> Scheme:
    """Look a scheme up by name, or build one from a dict with overrides."""
    if isinstance(scheme, Scheme):
        return scheme
    if isinstance(scheme, str):
        name, norm_over, conv_over = scheme, {}, {}
    elif isinstance(scheme, dict):
        unknown = set(scheme) - {'name', 'norm', 'conv'}
        if 'name' not in scheme or unknown:
            raise ValueError(
                f'norm scheme {dict(scheme)!r} is not valid: a dict needs '
                "'name' and may have 'norm' and 'conv' (overrides of the "
                f'layer arguments); unknown keys: {sorted(unknown)}')
        name = scheme['name']
        norm_over = dict(scheme.get('norm') or {})
        conv_over = dict(scheme.get('conv') or {})
    else:
        raise TypeError(f'norm scheme must be a name or a dict, got '
                        f'{type(scheme).__name__}')
    if name not in SCHEMES:
        raise ValueError(f'unknown norm scheme {name!r}; valid schemes: '
                         f'{", ".join(SCHEMES)}')
    base = SCHEMES[name]
    if not norm_over and not conv_over:
        return base
    if conv_over and base.conv_cfg is None:
        raise ValueError(f'norm scheme {name!r} has no conv layer to '
                         f'override (conv={conv_over!r})')
    norm_cfg = {**base.norm_cfg, **norm_over}
    conv_cfg = {**base.conv_cfg, **conv_over} if base.conv_cfg else None
    return Scheme(name, norm_cfg, conv_cfg, base.normalize_all,
                  base.description)


def accepts(cls, argument: str) -> bool:
    """Whether ``cls(...)`` takes ``argument``, following ``**kwargs`` up
    the class hierarchy (mmdet heads pass most arguments to a parent)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            return False
        params = inspect.signature(init).parameters
        if argument in params:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return False
    return False


def _module_configs(node, path=()):
    """Yield (path, dict) for every module config (a dict with 'type')."""
    if isinstance(node, dict):
        if 'type' in node:
            yield path, node
        for key, value in node.items():
            yield from _module_configs(value, path + (key, ))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _module_configs(value, path + (i, ))


_LAYER_KEYS = {'norm_cfg': 'norm', 'conv_cfg': 'conv'}


def _layer_configs(node, path=()):
    """Yield (path, 'norm' | 'conv', dict) for every ``norm_cfg`` /
    ``conv_cfg`` dict in a model config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _LAYER_KEYS and isinstance(value, dict):
                yield path + (key, ), _LAYER_KEYS[key], value
            else:
                yield from _layer_configs(value, path + (key, ))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _layer_configs(value, path + (i, ))


def registered_layer_types(scope: str) -> Dict[str, list]:
    """The names registered for normalization ('norm') and convolution
    ('conv') layers, as a config's ``norm_cfg`` / ``conv_cfg`` may name
    them in ``scope``."""
    import torch.nn as nn
    from mmengine.registry import MODELS

    from .models.layers.norm_types import NORM_TYPES
    from .scope import registry
    kinds = {'norm': NORM_TYPES, 'conv': (nn.modules.conv._ConvNd, )}
    names: Dict[str, list] = {k: [] for k in kinds}
    for reg in (registry(scope, 'MODELS'), MODELS):
        for name, cls in reg.module_dict.items():
            for kind, bases in kinds.items():
                if inspect.isclass(cls) and issubclass(cls, bases) and \
                        name not in names[kind]:
                    names[kind].append(name)
    return names


def check_layer_types(model_cfg: dict, scope: str,
                      root: str = 'model') -> None:
    """A ValueError naming the config key, the type and the registered
    types for a ``norm_cfg`` / ``conv_cfg`` whose type is missing or not
    registered (mmcv would fail with ``KeyError: 'Cannot find None in
    registry'``, naming neither)."""
    for path, kind, layer in _layer_configs(model_cfg):
        type_ = layer.get('type')
        if type_ is not None and not isinstance(type_, str):
            continue  # a class
        if type_ is not None and lookup(type_, scope) is not None:
            continue
        where = root + ''.join(f'[{p}]' if isinstance(p, int) else f'.{p}'
                               for p in path)
        valid = ', '.join(registered_layer_types(scope)[kind])
        what = "has no 'type'" if type_ is None else \
            f'type {type_!r} is not a registered {kind} layer'
        raise ValueError(f'{where}: {what}; registered {kind} types ({scope} '
                         f'and mmbcn): {valid}')


def apply_scheme(model_cfg: dict, scheme: Union[str, Dict, Scheme],
                 scope: str = 'mmdet') -> dict:
    """Rewrite ``model_cfg`` in place for ``scheme``; returns it.

    ``scope`` is the registry the model's types live in ('mmdet' or
    'mmseg'). See the module docstring for the rules.
    """
    scheme = get_scheme(scheme)
    check_scope(scope)
    if not isinstance(model_cfg, dict) or 'type' not in model_cfg:
        raise ValueError('apply_scheme needs a model config dict with a '
                         f"'type'; got {type(model_cfg).__name__}")
    for path, module in list(_module_configs(model_cfg)):
        if path == ():
            continue  # the detector / segmentor itself
        cls = lookup(module['type'], scope)
        if cls is None or not accepts(cls, 'norm_cfg'):
            continue
        if scheme.normalize_all and cls.__name__ == 'Shared2FCBBoxHead':
            module['type'] = 'Shared4Conv1FCBBoxHead'
            module.setdefault('conv_out_channels',
                              module.get('in_channels', 256))
            cls = lookup(module['type'], scope)
        has_norm = module.get('norm_cfg') is not None
        if has_norm or path[-1] == 'backbone' or scheme.normalize_all:
            module['norm_cfg'] = copy.deepcopy(scheme.norm_cfg)
            if accepts(cls, 'conv_cfg'):
                module['conv_cfg'] = copy.deepcopy(scheme.conv_cfg)
    return model_cfg


def apply_config_scheme(cfg: Config, norm: Union[str, Dict, None] = None
                        ) -> Config:
    """Apply ``norm`` (command line) or else ``cfg.norm_scheme`` to
    ``cfg.model``; records the scheme's name in ``cfg.norm_scheme``."""
    scheme = norm if norm is not None else cfg.get('norm_scheme')
    if scheme is None:
        return cfg
    if isinstance(scheme, ConfigDict):
        scheme = scheme.to_dict()
    resolved = get_scheme(scheme)
    apply_scheme(cfg.model, resolved, config_scope(cfg))
    cfg.norm_scheme = scheme
    return cfg
