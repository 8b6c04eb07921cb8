"""The normalization schemes, and the functions that apply and check them.

A scheme is a pair (norm_cfg, conv_cfg) plus whether it normalizes the whole
detector ("-all", as mmdet's gn / gn+ws configs: backbone, neck, RoI bbox and
mask heads) or only where the base config already normalizes (the backbone,
and mmseg's decode / auxiliary heads).

The shipped configs write each scheme's layers out (generated from this
table by ``tools/misc/generate_configs.py``), so any OpenMMLab tool builds
them as they read. Two ways to use the table besides:

- rewrite any mmdet / mmseg model config for a scheme::

      apply_scheme(cfg.model, 'bcn-ws', scope='mmdet')

  (``tools/train.py CONFIG --norm bcn-ws`` does this, :func:`apply_norm`,
  and logs what it rewrote). A scheme may also be a dict with overrides of
  its layers' arguments: ``dict(name='bcn-ws', norm=dict(num_groups=16))``;
- ``norm_scheme = 'bcn-ws'`` in a config is a *label* (the result tables
  group runs by it). It never changes the model; mmbcn's tools check that it
  names the layer types the config writes (:func:`check_norm_scheme`) and
  stop with one error listing the modules that disagree.

Rules of :func:`apply_scheme`, for every module config in the model (found
by walking the dict):

- a module that takes ``norm_cfg`` gets the scheme's ``norm_cfg`` if its
  config already has a norm, if it is the backbone, or, for "-all" schemes,
  always; it then also gets the scheme's ``conv_cfg`` where it takes one;
- for "-all" schemes a ``Shared2FCBBoxHead`` becomes mmdet's
  ``Shared4Conv1FCBBoxHead`` (four normalized convs before the fc), as in
  mmdet's gn+ws configs;
- modules without ``norm_cfg`` (RPN head, losses, ...) are left alone;
- a scheme with ``backbone=False`` (``cbn``: the CBN paper's Mask R-CNN
  setting) leaves the backbone as the base writes it and normalizes the
  neck and heads.

A scheme may need hooks (``hooks``: BatchRenorm's r_max / d_max schedule,
the conv links of Cross-Iteration BN). The generated configs write them into
``custom_hooks`` and ``--norm`` adds them there (:func:`with_scheme_hooks`),
so a config says everything it builds.

Every scheme also sets the optimizer wrapper's constructor to
:data:`OPTIM_WRAPPER` (``NormAwareOptimWrapperConstructor``), the same for
every scheme, so ``paramwise_cfg``'s norm and bias rules treat mmbcn's norms
as mmengine treats GroupNorm and schemes compared under one config get the
same regularization (for torch's own norms it gives exactly the default
constructor's groups). :func:`scheme_config_edits` is what a config writes
for a scheme (``model`` and ``optim_wrapper``), :func:`apply_norm` applies
both; :func:`apply_scheme` / :func:`scheme_edits` take the model config
alone. :func:`check_optim_constructor` stops a config whose
``paramwise_cfg`` would leave mmbcn's norms out of its norm rules.
"""
import copy
import dataclasses
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import MODELS

from .models.layers.norm_types import MMBCN_NORM_TYPES, NORM_TYPES
from .scope import check_scope, config_scope, lookup, registry


@dataclass(frozen=True)
class Scheme:
    name: str
    norm_cfg: Dict[str, Any]
    conv_cfg: Optional[Dict[str, Any]] = None
    normalize_all: bool = True
    description: str = ''
    notes: Dict[str, str] = field(default_factory=dict)
    #: whether the scheme rewrites the backbone's norms (False: the base's
    #: backbone norms stay, the scheme goes into the neck and heads)
    backbone: bool = True
    #: hook configs the scheme's layers need (in ``custom_hooks``)
    hooks: Tuple[Dict[str, Any], ...] = ()

    @property
    def det_tag(self) -> str:
        """The scheme in mmdet config names: "-all" when it normalizes the
        backbone, neck and heads, "-neck-head" for neck and heads only."""
        if not self.normalize_all:
            return self.name
        return self.name + ('-all' if self.backbone else '-neck-head')


#: The optimizer wrapper keys every scheme sets (merged onto the base's
#: ``optim_wrapper``): the constructor that counts mmbcn's norms as norms.
OPTIM_CONSTRUCTOR = 'NormAwareOptimWrapperConstructor'
OPTIM_WRAPPER: Dict[str, Any] = dict(constructor=OPTIM_CONSTRUCTOR)


_BN = dict(type='BN', requires_grad=True)
_SYNCBN = dict(type='SyncBN', requires_grad=True)
_GN = dict(type='GN', num_groups=32, requires_grad=True)
_BCN = dict(type='BCN', num_groups=32, requires_grad=True)
_BCN_LARGE = dict(type='BCN', num_groups=32, mode='large', sync='layer',
                  requires_grad=True)
_WS = dict(type='WSConv2d')
_SWS = dict(type='ScaledWSConv2d')
_AFFINE = dict(type='ChannelAffine', requires_grad=True)
_EVO_B0 = dict(type='EvoNormB0', requires_grad=True)
_EVO_S0 = dict(type='EvoNormS0', num_groups=32, requires_grad=True)
# FRN at the paper's eps; the TLU is off because mmdet's / mmseg's ResNets
# (and ConvModule's default act_cfg) put a ReLU after every norm: TLU then
# ReLU is max(y, max(tau, 0)), and tau (init 0) never gets a gradient, so
# the pair trains as FRN then ReLU with a dead parameter
_FRN = dict(type='FRN', eps=1e-6, tlu=False, requires_grad=True)
_BRN = dict(type='BatchRenorm', requires_grad=True)
_MABN = dict(type='MABN', requires_grad=True)
_CENTERED = dict(type='CenteredConv2d')
_CBN = dict(type='CrossIterationBN', buffer_num=3, requires_grad=True)
#: the paper's r_max / d_max schedule (steps 5k, 25k, 40k) as fractions of
#: a 100k-step run: BatchNorm for the first 5% of training, d_max 0 -> 5 by
#: 25%, r_max 1 -> 3 by 40% (the paper gives steps, the scaling is mmbcn's)
_BRN_HOOK = dict(type='BatchRenormScheduleHook', r_max=3.0, d_max=5.0,
                 start_iter=0.05, r_max_iter=0.4, d_max_iter=0.25,
                 by_fraction=True)
#: the conv links of the Taylor compensation, and the paper's burn-in of
#: 8 of 12 epochs (2/3 of the run)
_CBN_HOOK = dict(type='CBNLinkHook', burnin_fraction=round(2 / 3, 4))

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
    Scheme('bcn-ws-large', _BCN_LARGE, _WS, True,
           'Batch-Channel Normalization with the batch statistics of each '
           "step, synchronized across GPUs every layer (mode='large', "
           "sync='layer': the BCN authors' DeepLabV3 setting) + Weight "
           'Standardization everywhere'),
    Scheme('sws', _AFFINE, _SWS, True,
           'Scaled Weight Standardization, no normalization (per-channel '
           'affine in place of each norm; zero-init residuals as SkipInit)'),
    Scheme('evonorm-b0', _EVO_B0, None, True,
           'EvoNorm-B0 (batch variance, running variance in eval)'),
    Scheme('evonorm-s0', _EVO_S0, None, True,
           'EvoNorm-S0 (sigmoid gate, group variance, batch-independent)'),
    Scheme('frn', _FRN, None, True,
           'Filter Response Normalization (eps 1e-6) everywhere, followed by '
           "the blocks' own ReLU: the ResNets hard-code a ReLU after each "
           'norm, and a TLU before it would be max(y, max(tau, 0)) with tau '
           'stuck at 0, so the TLU is off (tlu=False, FRN then ReLU); the '
           "paper's FRN+TLU needs blocks without that ReLU",
           notes=dict(tlu='off: the ReLU after each norm is the activation')),
    Scheme('brn', _BRN, None, True,
           'Batch Renormalization everywhere (as the BRN baseline of the MABN '
           'paper); r_max 1 -> 3 and d_max 0 -> 5 by BatchRenormScheduleHook '
           '(BatchNorm for the first 5% of the run, d_max relaxed by 25%, '
           'r_max by 40%)', hooks=(_BRN_HOOK, )),
    Scheme('mabn', _MABN, _CENTERED, True,
           'Moving Average BN + weight centralization (CenteredConv2d) '
           "everywhere, the authors' defaults (buffer 16, warm-up 100, "
           'renorm after 1000 iterations)'),
    Scheme('cbn', _CBN, None, True,
           'Cross-Iteration BN (k = 4 iterations, Taylor-compensated) in the '
           "neck and heads, the backbone's norms as the base writes them (the "
           "paper's Mask R-CNN setting); CBNLinkHook links each CBN to its "
           'conv and burns in with BatchNorm for 2/3 of the run',
           backbone=False, hooks=(_CBN_HOOK, )),
)}

#: the hook types that belong to a scheme (removed by ``--norm`` when it
#: switches to a scheme that does not use them)
SCHEME_HOOK_TYPES = tuple(sorted({h['type'] for s in SCHEMES.values()
                                 for h in s.hooks}))


def scheme_names():
    return tuple(SCHEMES)


@dataclass(frozen=True)
class NormLabel:
    """A ``norm_scheme`` label of hand-written configs whose norms no scheme
    of :data:`SCHEMES` writes (a transformer backbone's token norms). Not a
    scheme: ``--norm`` and the generated configs do not take it, and it
    rewrites nothing; :func:`check_norm_scheme` checks that the backbone's
    ``norm_cfg`` (as written, else its class's default) is of
    ``backbone_norm``'s type and that ``custom_hooks`` has ``hooks``."""
    name: str
    backbone_norm: str
    hooks: Tuple[str, ...] = ()
    description: str = ''


#: The labels of the Swin configs (``configs/swin/``): their layers are
#: written by hand, the result tables label their rows with these.
NORM_LABELS: Dict[str, NormLabel] = {label.name: label for label in (
    NormLabel('ln', 'LN', (),
              "LayerNorm in the transformer backbone (mmdet's Swin)"),
    NormLabel('prepbn', 'PRepBN', ('PRepBNScheduleHook', ),
              'Progressive re-parameterized BatchNorm (SLAB) in place of '
              "every LayerNorm of the transformer backbone, lam 1 -> 0 by "
              'PRepBNScheduleHook'),
)}


def _default_arg(cls, argument: str):
    """The default of ``cls(argument=...)`` (None if it has none)."""
    param = inspect.signature(cls).parameters.get(argument)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def norm_label_conflicts(cfg: Config, label: NormLabel) -> List[str]:
    """Where ``cfg`` is not what ``label`` says (empty: nothing)."""
    scope = config_scope(cfg)
    backbone = cfg.model.get('backbone') if isinstance(
        cfg.get('model'), dict) else None
    if not isinstance(backbone, dict) or 'type' not in backbone:
        return ['model.backbone has no type']
    cls = lookup(backbone['type'], scope)
    if cls is None:
        return [f"model.backbone type {backbone['type']!r} is not "
                'registered']
    norm = backbone.get('norm_cfg')
    written = norm is not None
    if not written:
        norm = _default_arg(cls, 'norm_cfg')
    have = lookup(norm.get('type'), scope) if isinstance(norm, dict) \
        else None
    want = lookup(label.backbone_norm, scope)
    problems = []
    if have is None or have is not want:
        shown = _show(norm) + ('' if written else
                               f" ({cls.__name__}'s default)")
        problems.append(f'model.backbone.norm_cfg is {shown}, '
                        f'{label.name!r} has type={label.backbone_norm!r}')
    present = {_hook_type(h) for h in (cfg.get('custom_hooks') or [])}
    problems += [f'custom_hooks has no {t} ({label.name!r} needs it)'
                 for t in label.hooks if t not in present]
    return problems


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
    return dataclasses.replace(base, norm_cfg=norm_cfg, conv_cfg=conv_cfg)


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


def _apply(model_cfg: dict, scheme: Scheme, scope: str) -> list:
    """Rewrite ``model_cfg`` in place; the paths of the modules whose
    ``norm_cfg`` (and ``conv_cfg``) the scheme set."""
    check_scope(scope)
    if not isinstance(model_cfg, dict) or 'type' not in model_cfg:
        raise ValueError('apply_scheme needs a model config dict with a '
                         f"'type'; got {type(model_cfg).__name__}")
    rewritten = []
    for path, module in list(_module_configs(model_cfg)):
        if path == ():
            continue  # the detector / segmentor itself
        if not scheme.backbone and path[0] == 'backbone':
            continue  # the scheme leaves the backbone as the base has it
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
            rewritten.append(path)
    return rewritten


def apply_scheme(model_cfg: dict, scheme: Union[str, Dict, Scheme],
                 scope: str = 'mmdet') -> dict:
    """Rewrite ``model_cfg`` in place for ``scheme``; returns it.

    ``scope`` is the registry the model's types live in ('mmdet' or
    'mmseg'). See the module docstring for the rules.
    """
    _apply(model_cfg, get_scheme(scheme), scope)
    return model_cfg


def scheme_edits(model_cfg: dict, scheme: Union[str, Dict, Scheme],
                 scope: str = 'mmdet') -> dict:
    """What a config inheriting ``model_cfg`` writes to get ``scheme``.

    A nested dict holding, for every module the scheme normalizes, its
    ``norm_cfg`` and ``conv_cfg`` (also where unchanged, so the config shows
    them) and the other keys the scheme changes (a box head's ``type``);
    merged onto ``model_cfg`` as mmengine merges a child config, it gives
    :func:`apply_scheme`'s result. A layer config that must drop keys of
    the base's (``momentum`` of a BN, say) gets ``_delete_=True``.
    """
    after = copy.deepcopy(model_cfg)
    edits: Dict[str, Any] = {}
    for path in _apply(after, get_scheme(scheme), scope):
        if any(isinstance(p, int) for p in path):
            raise ValueError(
                f'{dotted(path)} is inside a list, which a child config '
                'replaces as a whole; scheme_edits cannot write it')
        before_m, after_m = _at(model_cfg, path), _at(after, path)
        node = edits
        for key in path:
            node = node.setdefault(key, {})
        for key, value in after_m.items():
            layer = key in ('norm_cfg', 'conv_cfg')
            if not layer and key in before_m and before_m[key] == value:
                continue
            value = copy.deepcopy(value)
            old = before_m.get(key)
            if layer and isinstance(old, dict) and isinstance(value, dict) \
                    and set(old) - set(value):
                value = {'_delete_': True, **value}
            node[key] = value
    return edits


def scheme_config_edits(model_cfg: dict, scheme: Union[str, Dict, Scheme],
                        scope: str = 'mmdet') -> dict:
    """What a config inheriting a base with model ``model_cfg`` writes to
    get ``scheme``: ``model`` (:func:`scheme_edits`) and ``optim_wrapper``
    (:data:`OPTIM_WRAPPER`, the same for every scheme)."""
    return dict(model=scheme_edits(model_cfg, scheme, scope),
                optim_wrapper=copy.deepcopy(OPTIM_WRAPPER))


#: paramwise_cfg rules that mmengine's default constructor applies by
#: module type (norms) and that therefore miss mmbcn's norms
NORM_RULES = ('norm_decay_mult', 'bias_decay_mult', 'bias_lr_mult',
              'flat_decay_mult')
_DEFAULT_CONSTRUCTORS = (None, 'DefaultOptimWrapperConstructor')


def _is_default_constructor(constructor) -> bool:
    if constructor in _DEFAULT_CONSTRUCTORS:
        return True
    from mmengine.optim import DefaultOptimWrapperConstructor
    return constructor is DefaultOptimWrapperConstructor


def _set_constructor(cfg: Config) -> bool:
    """Give ``cfg.optim_wrapper`` the scheme constructor unless it names
    another non-default one; whether it did. A config without
    ``optim_wrapper`` (test only) gets none."""
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict) or \
            not _is_default_constructor(wrapper.get('constructor')):
        return False
    wrapper.update(copy.deepcopy(OPTIM_WRAPPER))
    return True


def mmbcn_norm_paths(model_cfg: dict, scope: Optional[str]) -> List[str]:
    """The config keys of ``model_cfg`` whose ``norm_cfg`` or module
    ``type`` is one of mmbcn's norms (types looked up in ``scope``, mmdet or
    mmseg, else in the root registry)."""
    def is_mmbcn_norm(type_):
        if scope in ('mmdet', 'mmseg'):
            cls = lookup(type_, scope)
        else:
            cls = MODELS.get(type_) if isinstance(type_, str) else type_
        return inspect.isclass(cls) and issubclass(cls, MMBCN_NORM_TYPES)

    found = [dotted(path) for path, kind, layer in _layer_configs(model_cfg)
             if kind == 'norm' and is_mmbcn_norm(layer.get('type'))]
    found += [dotted(path) for path, module in _module_configs(model_cfg)
              if is_mmbcn_norm(module['type'])]
    return found


def check_optim_constructor(cfg: Config,
                            name: Optional[str] = None) -> Config:
    """One ValueError if the model has mmbcn norms, ``optim_wrapper.
    paramwise_cfg`` sets a rule of :data:`NORM_RULES` and the constructor
    is mmengine's default, which would not count those norms as norms."""
    wrapper = cfg.get('optim_wrapper')
    model = cfg.get('model')
    if not isinstance(wrapper, dict) or not isinstance(model, dict) or \
            not _is_default_constructor(wrapper.get('constructor')):
        return cfg
    paramwise = wrapper.get('paramwise_cfg') or {}
    rules = [r for r in NORM_RULES if r in paramwise]
    if not rules:
        return cfg
    paths = mmbcn_norm_paths(model, cfg.get('default_scope'))
    if paths:
        name = name or cfg.filename or 'config'
        shown = ', '.join(paths[:3]) + (
            f' (and {len(paths) - 3} more)' if len(paths) > 3 else '')
        raise ValueError(
            f'{name}: optim_wrapper.paramwise_cfg sets '
            f'{", ".join(rules)}, but mmengine\'s default constructor does '
            f'not count mmbcn\'s norms ({shown}) as norms; set '
            f"optim_wrapper.constructor={OPTIM_CONSTRUCTOR!r}")
    return cfg


def dotted(path) -> str:
    """``('roi_head', 'bbox_head')`` -> ``'model.roi_head.bbox_head'``."""
    return 'model' + ''.join(f'[{p}]' if isinstance(p, int) else f'.{p}'
                             for p in path)


def _at(node, path):
    for key in path:
        node = node[key]
    return node


#: Layer arguments that change what kind of normalization a layer is (not
#: its size or precision), with their defaults: compared like the type.
KIND_ARGS = {'BCN': {'mode': 'micro'}}


def _type_of(layer_cfg):
    """The layer's type, with its :data:`KIND_ARGS` if it has any."""
    if layer_cfg is None:
        return None
    type_ = layer_cfg.get('type')
    kind = KIND_ARGS.get(type_) if isinstance(type_, str) else None
    if not kind:
        return type_
    args = ', '.join(f'{k}={layer_cfg.get(k, v)!r}' for k, v in kind.items())
    return f'{type_}({args})'


def _show(layer_cfg) -> str:
    """``type='BCN' (mode='micro')``, ``type='GN'`` or ``None``."""
    if layer_cfg is None:
        return 'None'
    type_ = layer_cfg.get('type')
    kind = _type_of(layer_cfg)
    return f'type={type_!r}' + (f' ({kind[len(type_) + 1:-1]})'
                                if kind != type_ else '')


def scheme_conflicts(model_cfg: dict, scheme: Union[str, Dict, Scheme],
                     scope: str = 'mmdet') -> List[str]:
    """Where the layers written in ``model_cfg`` are not ``scheme``'s.

    A module disagrees when the scheme would normalize it and its
    ``norm_cfg`` / ``conv_cfg`` is of another type (or absent, or of another
    kind: :data:`KIND_ARGS`, BCN's ``mode``), or, for a
    scheme given as a dict with overrides, when an overridden argument has
    another value. Other arguments (``num_groups``, ``eps``, ...) are the
    config's to choose. Returns one line per disagreement (empty: none).
    """
    overrides = {}
    if isinstance(scheme, dict):
        overrides = dict(norm_cfg=dict(scheme.get('norm') or {}),
                         conv_cfg=dict(scheme.get('conv') or {}))
    scheme = get_scheme(scheme)
    expected = copy.deepcopy(model_cfg)
    problems = []
    for path in _apply(expected, scheme, scope):
        written, wanted = _at(model_cfg, path), _at(expected, path)
        for key in ('norm_cfg', 'conv_cfg'):
            if key not in wanted:
                continue
            have, want = written.get(key), wanted[key]
            if _type_of(have) != _type_of(want):
                problems.append(f'{dotted(path)}.{key} is {_show(have)}, '
                                f'{scheme.name!r} has {_show(want)}')
                continue
            for arg, value in overrides.get(key, {}).items():
                if have.get(arg) != value:
                    problems.append(f'{dotted(path)}.{key}.{arg} is '
                                    f'{have.get(arg)!r}, the scheme sets '
                                    f'{value!r}')
    return problems


def matching_schemes(model_cfg: dict, scope: str = 'mmdet') -> List[str]:
    """The names of the schemes whose layer types ``model_cfg`` has."""
    return [name for name in SCHEMES
            if not scheme_conflicts(model_cfg, name, scope)]


def _label(scheme) -> Union[str, Dict]:
    return scheme.to_dict() if isinstance(scheme, ConfigDict) else scheme


def _hook_type(hook) -> Any:
    return hook.get('type') if isinstance(hook, dict) else None


def with_scheme_hooks(custom_hooks, scheme: Union[str, Dict, Scheme]
                      ) -> list:
    """``custom_hooks`` (a list of hook configs) for ``scheme``: the hooks
    of other schemes (:data:`SCHEME_HOOK_TYPES`) removed, the scheme's own
    appended where the list has no hook of that type (one it has, with its
    own arguments, is kept)."""
    scheme = get_scheme(scheme)
    own = {h['type'] for h in scheme.hooks}
    hooks = [copy.deepcopy(h) for h in (custom_hooks or [])
             if _hook_type(h) not in SCHEME_HOOK_TYPES or _hook_type(h) in own]
    present = {_hook_type(h) for h in hooks}
    hooks += [copy.deepcopy(h) for h in scheme.hooks
              if h['type'] not in present]
    return hooks


def missing_hooks(cfg: Config, scheme: Union[str, Dict, Scheme]
                  ) -> List[str]:
    """The types of the hooks ``scheme`` needs that ``cfg.custom_hooks``
    lacks."""
    present = {_hook_type(h) for h in (cfg.get('custom_hooks') or [])}
    return [h['type'] for h in get_scheme(scheme).hooks
            if h['type'] not in present]


def apply_norm(cfg: Config, norm: Union[str, Dict]) -> Config:
    """``--norm``: rewrite ``cfg.model`` for ``norm`` whatever the config
    writes, say so in the log, and make ``cfg.norm_scheme`` its name."""
    scheme = get_scheme(norm)
    old = _label(cfg.get('norm_scheme'))
    paths = _apply(cfg.model, scheme, config_scope(cfg))
    # the top-level variables a config writes its layers with (as mmdet's
    # gn+ws configs do), so that a dump of the config reads the same
    for key, value in (('norm_cfg', scheme.norm_cfg),
                       ('conv_cfg', scheme.conv_cfg)):
        if key in cfg:
            cfg[key] = copy.deepcopy(value)
    constructor = _set_constructor(cfg)
    hooks = with_scheme_hooks(cfg.get('custom_hooks'), scheme)
    added = [h['type'] for h in hooks
             if h not in (cfg.get('custom_hooks') or [])]
    if hooks or 'custom_hooks' in cfg:
        cfg.custom_hooks = hooks
    print_log(
        f'--norm {scheme.name}: rewrote norm_cfg / conv_cfg of '
        f'{len(paths)} modules ({", ".join(dotted(p) for p in paths)}) '
        f"to {scheme.name!r}" + (
            f' (the config says norm_scheme={old!r}; its own layers are '
            'replaced)' if old is not None else '') + (
            f'; optim_wrapper.constructor={OPTIM_CONSTRUCTOR!r}'
            if constructor else '') +
        (f'; added custom_hooks {", ".join(added)}' if added else ''),
        logger='current', level=logging.WARNING)
    cfg.norm_scheme = _label(norm)
    return cfg


def check_norm_scheme(cfg: Config, name: Optional[str] = None) -> Config:
    """Check that the config's ``norm_scheme`` label (if any) names the
    layers its model writes out; one ValueError listing the
    disagreements (and the schemes that do match) if not."""
    label = _label(cfg.get('norm_scheme'))
    if label is None:
        return cfg
    if isinstance(label, str) and label in NORM_LABELS:
        problems = norm_label_conflicts(cfg, NORM_LABELS[label])
        if problems:
            name = name or cfg.filename or 'config'
            raise ValueError(
                f'{name}: norm_scheme={label!r} does not describe the '
                f'model: {"; ".join(problems)}. norm_scheme is a label (for '
                'the result tables) and never changes the model')
        return cfg
    if isinstance(label, str) and label not in SCHEMES:
        name = name or cfg.filename or 'config'
        raise ValueError(
            f'{name}: norm_scheme={label!r} is neither a scheme '
            f'({", ".join(SCHEMES)}) nor a label of the hand-written '
            f'configs ({", ".join(NORM_LABELS)})')
    scope = config_scope(cfg)
    problems = scheme_conflicts(cfg.model, label, scope)
    problems += [f'custom_hooks has no {t} (the scheme needs it)'
                 for t in missing_hooks(cfg, label)]
    if problems:
        name = name or cfg.filename or 'config'
        matches = matching_schemes(cfg.model, scope)
        hint = (f'the layers are those of {", ".join(map(repr, matches))}; '
                if matches else 'the layers match no scheme of the table; ')
        shown = '; '.join(problems[:6])
        more = f' (and {len(problems) - 6} more)' if len(problems) > 6 \
            else ''
        raise ValueError(
            f'{name}: norm_scheme={label!r} does not describe the model: '
            f'{shown}{more}. norm_scheme is a label (for the result '
            'tables) and never changes the model; '
            f'{hint}set norm_scheme to the scheme the layers are, delete '
            'it, or rewrite the layers with --norm NAME '
            f'({", ".join(SCHEMES)})')
    return cfg


def apply_config_scheme(cfg: Config, norm: Union[str, Dict, None] = None
                        ) -> Config:
    """``--norm`` (:func:`apply_norm`) if given, then
    :func:`check_norm_scheme`."""
    if norm is not None:
        apply_norm(cfg, norm)
    return check_norm_scheme(cfg)


def where(scheme: Union[str, Scheme]) -> str:
    """Where a scheme puts its layers, in words."""
    scheme = get_scheme(scheme)
    if scheme.normalize_all and not scheme.backbone:
        return ('neck and heads: FPN, RoI box / mask heads, decode / '
                "auxiliary heads (the backbone's norms as the base writes "
                'them)')
    if scheme.normalize_all:
        return ('everywhere: backbone, neck, RoI box / mask heads, decode / '
                'auxiliary heads')
    return ('where the base normalizes: backbone (and mmseg\'s decode / '
            'auxiliary heads)')


def _inline(cfg) -> str:
    if cfg is None:
        return 'None'
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in cfg.items()) + ')'


def scheme_table_markdown() -> str:
    """The scheme table (every scheme of :data:`SCHEMES`) in Markdown."""
    rows = ['| scheme | norm_cfg | conv_cfg | where | description |',
            '|---|---|---|---|---|']
    for s in SCHEMES.values():
        rows.append(f'| `{s.name}` | `{_inline(s.norm_cfg)}` | '
                    f'`{_inline(s.conv_cfg)}` | {where(s)} | '
                    f'{s.description} |')
    return '\n'.join(rows) + '\n'
