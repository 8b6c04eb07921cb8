"""Convert ImageNet WS ResNets into mmdet / mmseg ``ResNet`` checkpoints.

Two sources (the layouts of the project notes' "Pretrained checkpoint
layouts"):

``'bcn-ws'``
    the BCN authors' ImageNet BCN+WS ResNets (torchvision names): convs
    ``conv1``, ``layer{k}.{i}.conv{j}``, ``layer{k}.0.downsample.0``; each
    norm ``bn{j}`` / ``downsample.1`` holds the channel stage's per-group
    affine ``weight`` / ``bias`` of shape (1, G, 1) and the batch stage
    ``pbn.{weight,bias,running_mean,running_var,num_batches_tracked}``.
    Target: ``ResNet`` with the ``'bcn-ws'`` scheme, whose norms are
    ``bcn{j}`` (BCN's abbreviation) with ``batch_weight``, ``batch_bias``,
    ``weight`` / ``bias`` (G,), ``running_mean``, ``running_var``,
    ``num_batches_tracked``, ``update_rate``.
``'gn-ws'``
    mmdet's GN+WS ImageNet ResNets (``open-mmlab://jhu/resnet50_gn_ws``, ...)
    with GN named ``gn{j}`` (the names mmdet's ``ResNet`` gives GN).
    Target: ``ResNet`` with the ``'gn-ws'`` scheme (same names).

Both targets are the torchvision-style ResNet (plain 7x7 stem, stride on the
3x3 conv): mmdet ``ResNet`` / mmseg ``ResNet`` with ``style='pytorch'`` and
``deep_stem=False`` (not mmseg's ``ResNetV1c``, whose stem is three convs).
``fc.*`` is dropped. The keys are backbone-relative, for
``init_cfg=dict(type='Pretrained', checkpoint=...)`` on the backbone; with
``prefix='backbone.'`` they are a detector's / segmentor's keys, for
``load_from``.

Weight Standardization: the sources standardize their filters differently
from mmbcn's default; :mod:`mmbcn.converters.ws` re-parametrizes each
filter so that the converted network computes exactly what the source
computed.
"""
import io
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from .ws import TARGET_EPS_MODES, WS_SEMANTICS, ws_reparametrize

SOURCES = ('bcn-ws', 'gn-ws')
#: How each source's WS convs standardized their weights.
SOURCE_WS = {'bcn-ws': 'var-unbiased', 'gn-ws': 'std'}
SOURCE_NAMES = {
    'bcn-ws': "the BCN authors' ImageNet BCN+WS ResNet",
    'gn-ws': "mmdet's GN+WS ImageNet ResNet (open-mmlab://jhu/*_gn_ws)",
}
# mmdet ResNet.arch_settings: depth -> (block, stage_blocks)
ARCHS = {
    18: ('BasicBlock', (2, 2, 2, 2)),
    34: ('BasicBlock', (3, 4, 6, 3)),
    50: ('Bottleneck', (3, 4, 6, 3)),
    101: ('Bottleneck', (3, 4, 23, 3)),
    152: ('Bottleneck', (3, 8, 36, 3)),
}

_CONV = re.compile(
    r'^(?P<mod>conv1|layer\d+\.\d+\.(?:conv\d+|downsample\.0))\.weight$')
_NORM = {
    'bcn-ws': re.compile(
        r'^(?P<mod>bn1|layer\d+\.\d+\.(?:bn\d+|downsample\.1))\.'
        r'(?P<part>weight|bias|pbn\.(?:weight|bias|running_mean|running_var|'
        r'num_batches_tracked))$'),
    'gn-ws': re.compile(
        r'^(?P<mod>gn1|layer\d+\.\d+\.(?:gn\d+|downsample\.1))\.'
        r'(?P<part>weight|bias)$'),
}
_NORM_PARTS = {
    'bcn-ws': ('weight', 'bias', 'pbn.weight', 'pbn.bias',
               'pbn.running_mean', 'pbn.running_var'),
    'gn-ws': ('weight', 'bias'),
}
_NORM_ABBR = {'bcn-ws': 'bn', 'gn-ws': 'gn'}
_HEAD = re.compile(r'^fc\.(weight|bias)$')
_REQUIRED = {
    'bcn-ws': ('conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.pbn.weight',
               'bn1.pbn.bias', 'bn1.pbn.running_mean', 'bn1.pbn.running_var',
               'layer1.0.conv1.weight', 'layer1.0.bn1.pbn.running_mean'),
    'gn-ws': ('conv1.weight', 'gn1.weight', 'gn1.bias',
              'layer1.0.conv1.weight', 'layer1.0.gn1.weight'),
}


class LayoutError(ValueError):
    """The checkpoint is not in the layout the converter expects."""


@dataclass
class ConversionResult:
    """A converted state dict, the source keys left out, and the metadata
    (config hints) written beside it."""
    state_dict: 'OrderedDict[str, Tensor]'
    dropped: List[str] = field(default_factory=list)
    meta: Dict = field(default_factory=dict)

    def checkpoint(self) -> dict:
        """``{'state_dict': ..., 'meta': ...}`` as mmengine loads it."""
        return {'state_dict': self.state_dict, 'meta': self.meta}


# --------------------------------------------------------------------------
# Reading checkpoints
# --------------------------------------------------------------------------
def load_source(path: Union[str, os.PathLike], trust: bool = False) -> dict:
    """Load a checkpoint file on the CPU.

    Weights-only unpickling (:func:`mmbcn.compat.load_file`: tensors,
    containers, numpy arrays, mmengine runner checkpoints); with
    ``trust=True`` any pickle (only for files you trust).
    """
    from ..compat import CheckpointError, load_file
    try:
        return load_file(path, 'cpu', trust=trust or None)
    except CheckpointError as err:
        raise LayoutError(f'{err} (command line: --trust-source)') from None


def extract_state_dict(checkpoint: Mapping) -> 'OrderedDict[str, Tensor]':
    """The state dict of a checkpoint: unwraps ``{'state_dict': ...}`` (or
    ``{'model': ...}``) and strips the ``module.`` prefixes of
    (Distributed)DataParallel."""
    if not isinstance(checkpoint, Mapping):
        raise LayoutError(
            'a checkpoint must be a dict of tensors, or a dict with one under '
            f"'state_dict'; got {type(checkpoint).__name__}")
    state = checkpoint
    for wrapper in ('state_dict', 'model'):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    not_tensors = [k for k, v in state.items() if not torch.is_tensor(v)]
    if not_tensors:
        raise LayoutError(
            'not a state dict: the values of '
            f'{_preview(not_tensors)} are not tensors (found top-level keys '
            f"{_preview(list(checkpoint))}; expected a dict of tensors or "
            "one under 'state_dict')")
    out = OrderedDict()
    for key, value in state.items():
        name = re.sub(r'^(?:module\.)+', '', key)
        if name in out:
            raise LayoutError(f'keys {key!r} and another both name {name!r} '
                              "once the 'module.' prefixes are stripped")
        out[name] = value
    return out


def _preview(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ', '.join(repr(k) for k in keys[:limit])
    more = f', ... ({len(keys)} in all)' if len(keys) > limit else ''
    return f'[{shown}{more}]'


def detect_source(state_dict: Mapping) -> Optional[str]:
    """``'bcn-ws'``, ``'gn-ws'`` or None for an unwrapped state dict."""
    keys = list(state_dict)
    if any(_NORM['bcn-ws'].match(k) and '.pbn.' in k for k in keys):
        return 'bcn-ws'
    if any(_NORM['gn-ws'].match(k) and re.search(r'(^|\.)gn\d+\.', k)
           for k in keys):
        return 'gn-ws'
    return None


def _describe(state_dict: Mapping) -> str:
    """A guess at what an unrecognized state dict is, for error messages."""
    keys = list(state_dict)
    if any(k.startswith('backbone.') for k in keys):
        return ("it looks like a detector / segmentor checkpoint (keys start "
                "with 'backbone.'), not an ImageNet classifier")
    if any(re.search(r'\.(batch_weight|update_rate)$', k) for k in keys):
        return 'it looks like an mmbcn BCN checkpoint (already converted)'
    if 'bn1.running_mean' in state_dict:
        return ('it looks like a BatchNorm ResNet (bn1.running_mean), '
                'which has no BCN batch stage (bn1.pbn.*)')
    if 'stem.0.weight' in state_dict or 'conv1.0.weight' in state_dict:
        return 'it looks like a deep-stem ResNet (ResNetV1c/d), not supported'
    return 'its keys match neither supported layout'


# --------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------
def _norm_of_conv(conv: str, abbr: str) -> str:
    if conv.endswith('downsample.0'):
        return conv[:-1] + '1'
    return re.sub(r'conv(\d+)$', abbr + r'\1', conv)


def _target_norm(mod: str, source: str) -> str:
    if source == 'bcn-ws':
        return re.sub(r'(^|\.)bn(\d+)$', r'\1bcn\2', mod)
    return mod


def _parse(state: Mapping, source: str):
    """Group the keys into convs, norms (by module) and dropped keys."""
    name = SOURCE_NAMES[source]
    missing = [k for k in _REQUIRED[source] if k not in state]
    if missing:
        guess = detect_source(state)
        hint = (f'; it looks like {SOURCE_NAMES[guess]}: convert it with '
                f"source={guess!r}" if guess not in (None, source)
                else f'; {_describe(state)}')
        raise LayoutError(
            f'not {name}: expected keys {list(_REQUIRED[source])} '
            f'(missing {missing}); found keys {_preview(list(state))}{hint}')
    convs, norms, dropped, unknown = OrderedDict(), OrderedDict(), [], []
    for key, value in state.items():
        conv = _CONV.match(key)
        norm = _NORM[source].match(key)
        if conv:
            convs[conv['mod']] = value
        elif norm:
            norms.setdefault(norm['mod'], {})[norm['part']] = value
        elif _HEAD.match(key):
            dropped.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise LayoutError(
            f'{name}: keys {_preview(unknown)} are not part of the expected '
            'layout (convs conv1 / layer{k}.{i}.conv{j} / '
            'layer{k}.0.downsample.0, their norms '
            f"{_NORM_ABBR[source]}{{j}} / downsample.1 with parts "
            f'{list(_NORM_PARTS[source])}, and fc.*)')
    abbr = _NORM_ABBR[source]
    problems = []
    for conv, weight in convs.items():
        if weight.dim() != 4:
            problems.append(f'{conv}.weight has shape {tuple(weight.shape)}, '
                            'not (C_out, C_in, kH, kW)')
        if _norm_of_conv(conv, abbr) not in norms:
            problems.append(f'conv {conv} has no norm '
                            f'{_norm_of_conv(conv, abbr)}')
    conv_of = {_norm_of_conv(c, abbr): c for c in convs}
    for mod, parts in norms.items():
        lacking = [p for p in _NORM_PARTS[source] if p not in parts]
        if lacking:
            names = [f'{mod}.{p}' for p in lacking]
            problems.append(f'norm {mod} lacks {names}')
        if mod not in conv_of:
            problems.append(f'norm {mod} follows no conv')
    if problems:
        raise LayoutError(f'{name}: the checkpoint is incomplete or '
                          f'inconsistent: {"; ".join(problems[:10])}')
    return convs, norms, dropped


def _architecture(convs: Mapping) -> dict:
    stages: Dict[int, int] = {}
    for conv in convs:
        m = re.match(r'layer(\d+)\.(\d+)\.', conv)
        if m:
            k, i = int(m[1]), int(m[2])
            stages[k] = max(stages.get(k, 0), i + 1)
    stage_blocks = tuple(stages[k] for k in sorted(stages))
    if sorted(stages) != list(range(1, len(stages) + 1)):
        raise LayoutError(f'stages {sorted(stages)} are not layer1..layerS')
    block = 'Bottleneck' if 'layer1.0.conv3' in convs else 'BasicBlock'
    depth = next((d for d, arch in ARCHS.items()
                  if arch == (block, stage_blocks)), None)
    return dict(depth=depth, block=block, stage_blocks=list(stage_blocks),
                in_channels=int(convs['conv1'].shape[1]),
                stem_channels=int(convs['conv1'].shape[0]),
                base_channels=int(convs['layer1.0.conv1'].shape[0]))


def _as_vector(t: Tensor, what: str) -> Tensor:
    if t.dim() == 3 and t.shape[0] == 1 and t.shape[2] == 1:
        return t.reshape(-1).clone()
    if t.dim() == 1:
        return t.clone()
    raise LayoutError(f'{what} has shape {tuple(t.shape)}; expected the '
                      'per-group affine (1, G, 1)')


def _convert(state: Mapping, source: str, eps_mode: str,
             source_ws: Optional[str], source_eps: float, target_eps: float,
             update_rate: Optional[float], num_groups: int,
             prefix: str) -> ConversionResult:
    if source not in SOURCES:
        raise ValueError(f'source={source!r} is not valid; choose one of '
                         f'{SOURCES}')
    if eps_mode not in TARGET_EPS_MODES:
        raise ValueError(f'eps_mode={eps_mode!r} is not valid; choose one '
                         f'of {TARGET_EPS_MODES}')
    source_ws = source_ws or SOURCE_WS[source]
    if update_rate is not None and not 0 < update_rate <= 1:
        raise ValueError(f'update_rate={update_rate!r} is not in (0, 1]')
    convs, norms, dropped = _parse(state, source)
    arch = _architecture(convs)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    filled, groups = [], set()
    for conv, weight in convs.items():
        try:
            out[f'{conv}.weight'] = ws_reparametrize(
                weight, source_ws, eps_mode, source_eps, target_eps)
        except ValueError as err:
            raise ValueError(f'{conv}.weight: {err}') from err
    for mod, parts in norms.items():
        tgt = _target_norm(mod, source)
        channels = convs[_conv_of(mod, source)].shape[0]
        if source == 'gn-ws':
            for part in ('weight', 'bias'):
                t = parts[part]
                if tuple(t.shape) != (channels, ):
                    raise LayoutError(f'{mod}.{part} has shape '
                                      f'{tuple(t.shape)}; expected '
                                      f'({channels},)')
                out[f'{tgt}.{part}'] = t.clone()
            continue
        weight = _as_vector(parts['weight'], f'{mod}.weight')
        bias = _as_vector(parts['bias'], f'{mod}.bias')
        g = weight.numel()
        if bias.numel() != g or channels % g:
            raise LayoutError(
                f'{mod}: per-group affine of {g} groups (bias {bias.numel()})'
                f' does not divide the {channels} channels of its conv')
        groups.add(g)
        for part in ('pbn.weight', 'pbn.bias', 'pbn.running_mean',
                     'pbn.running_var'):
            if tuple(parts[part].shape) != (channels, ):
                raise LayoutError(f'{mod}.{part} has shape '
                                  f'{tuple(parts[part].shape)}; expected '
                                  f'({channels},)')
        out[f'{tgt}.batch_weight'] = parts['pbn.weight'].clone()
        out[f'{tgt}.batch_bias'] = parts['pbn.bias'].clone()
        out[f'{tgt}.weight'] = weight
        out[f'{tgt}.bias'] = bias
        out[f'{tgt}.running_mean'] = parts['pbn.running_mean'].clone()
        out[f'{tgt}.running_var'] = parts['pbn.running_var'].clone()
        tracked = parts.get('pbn.num_batches_tracked')
        if tracked is None:
            # no count: say "enough batches" so that a micro-batch warm-up
            # does not replace the ImageNet estimates with the first batch
            steps = math.ceil(1 / update_rate) if update_rate else 100
            tracked = torch.tensor(steps, dtype=torch.long)
            filled.append(f'{tgt}.num_batches_tracked')
        out[f'{tgt}.num_batches_tracked'] = tracked.clone().reshape(())
        if update_rate is not None:
            out[f'{tgt}.update_rate'] = torch.tensor(float(update_rate))
    if source == 'bcn-ws':
        if len(groups) > 1:
            raise LayoutError(f'the norms use different group counts '
                              f'{sorted(groups)}; one BCN num_groups '
                              'cannot load them all')
        num_groups = groups.pop()
    if prefix:
        out = OrderedDict((prefix + k, v) for k, v in out.items())
    meta = _meta(source, eps_mode, source_ws, source_eps, target_eps,
                 update_rate, num_groups, prefix, arch, dropped, filled)
    return ConversionResult(out, dropped, meta)


def _conv_of(norm: str, source: str) -> str:
    if norm.endswith('downsample.1'):
        return norm[:-1] + '0'
    return re.sub(_NORM_ABBR[source] + r'(\d+)$', r'conv\1', norm)


def _meta(source, eps_mode, source_ws, source_eps, target_eps, update_rate,
          num_groups, prefix, arch, dropped, filled) -> dict:
    from ..version import __version__
    scheme = 'bcn-ws' if source == 'bcn-ws' else 'gn-ws'
    norm_type = 'BCN' if source == 'bcn-ws' else 'GN'
    conv_cfg = dict(type='WSConv2d', eps_mode=eps_mode)
    if target_eps != 1e-5:
        conv_cfg['eps'] = target_eps
    norm_cfg = dict(type=norm_type, num_groups=num_groups,
                    requires_grad=True)
    overrides = {}
    if num_groups != 32:
        overrides['norm'] = dict(num_groups=num_groups)
    conv_over = {k: v for k, v in conv_cfg.items() if k != 'type'}
    if conv_over != dict(eps_mode='var'):
        overrides['conv'] = {k: v for k, v in conv_over.items()
                             if (k, v) != ('eps_mode', 'var')}
    norm_scheme = dict(name=scheme, **overrides) if overrides else scheme
    notes = [
        f'source WS: {WS_SEMANTICS[source_ws]}, eps={source_eps}; '
        f"converted for WSConv2d(eps_mode='{eps_mode}', eps={target_eps}): "
        + ('weights copied unchanged' if source_ws == eps_mode and
           source_eps == target_eps else
           "each filter centered and rescaled so the standardized weights "
           "are the source's"),
        "backbone: type='ResNet' (mmdet or mmseg), style='pytorch', "
        'deep_stem=False (not ResNetV1c/d)',
    ]
    if source == 'gn-ws':
        notes.append(f'GN group count is not stored in the checkpoint; the '
                     f'source used {num_groups} (as assumed here)')
    if update_rate is not None and source == 'bcn-ws':
        notes.append(f'BCN update_rate {update_rate} is stored in the '
                     'checkpoint and replaces the config value on loading')
    if filled:
        notes.append(f'{len(filled)} num_batches_tracked missing in the '
                     'source were set so no warm-up restarts the estimates')
    return dict(
        converter='mmbcn.converters.resnet', mmbcn_version=__version__,
        source=source, scheme=scheme, norm_scheme=norm_scheme,
        conv_cfg=conv_cfg, norm_cfg=norm_cfg, source_ws=source_ws,
        source_eps=source_eps, style='pytorch', prefix=prefix,
        dropped_keys=list(dropped), filled_keys=list(filled), notes=notes,
        **arch)


def convert_resnet(checkpoint, source: str = 'auto', eps_mode: str = 'var',
                   source_ws: Optional[str] = None, source_eps: float = 1e-5,
                   target_eps: float = 1e-5,
                   update_rate: Optional[float] = 0.01, num_groups: int = 32,
                   prefix: str = '', trust: bool = False) -> ConversionResult:
    """Convert a checkpoint (a path, a checkpoint dict or a state dict).

    Args:
        source: ``'bcn-ws'``, ``'gn-ws'`` or ``'auto'`` (detect).
        eps_mode: the target ``WSConv2d`` eps mode (``'var'``: mmbcn's
            default, ``'std'``).
        source_ws: the source's WS semantics (a :data:`WS_SEMANTICS` key);
            default: :data:`SOURCE_WS` for the source.
        source_eps / target_eps: the eps of the source's / target's WS.
        update_rate: BCN ``update_rate`` buffer to write (None: leave it
            out; a strict load then misses it).
        num_groups: the GN group count of a ``'gn-ws'`` source (not stored
            in its checkpoint; only for the config hints). BCN's is read
            from the per-group affine.
        prefix: prepended to every key (``'backbone.'`` for ``load_from``).
        trust: unpickle a file without the weights-only restriction.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load_source(checkpoint, trust=trust)
    state = extract_state_dict(checkpoint)
    if source == 'auto':
        source = detect_source(state)
        if source is None:
            raise LayoutError(
                'unrecognized checkpoint layout: expected '
                f"{SOURCE_NAMES['bcn-ws']} (keys like "
                f"{list(_REQUIRED['bcn-ws'][:6])}) or "
                f"{SOURCE_NAMES['gn-ws']} (keys like "
                f"{list(_REQUIRED['gn-ws'][:3])}); found keys "
                f'{_preview(list(state))}; {_describe(state)}')
    return _convert(state, source, eps_mode, source_ws, source_eps,
                    target_eps, update_rate, num_groups, prefix)


def convert_bcn_ws_resnet(checkpoint, **kwargs) -> ConversionResult:
    """:func:`convert_resnet` for the BCN authors' BCN+WS ResNets."""
    return convert_resnet(checkpoint, source='bcn-ws', **kwargs)


def convert_gn_ws_resnet(checkpoint, **kwargs) -> ConversionResult:
    """:func:`convert_resnet` for mmdet's GN+WS ImageNet ResNets."""
    kwargs.setdefault('update_rate', None)
    return convert_resnet(checkpoint, source='gn-ws', **kwargs)


def save_converted(result: ConversionResult,
                   path: Union[str, os.PathLike]) -> None:
    """Write ``{'state_dict', 'meta'}`` all-or-nothing (never half-written).
    """
    from ..compat import atomic_write
    buffer = io.BytesIO()
    torch.save(result.checkpoint(), buffer)
    atomic_write(buffer.getvalue(), os.fspath(path))


def config_hint(meta: Mapping, checkpoint: str) -> str:
    """The config lines that load a converted checkpoint."""
    arch = [f"depth={meta['depth']}" if meta.get('depth') is not None else
            f"depth=<{meta['block']}>, "
            f"stage_blocks={tuple(meta['stage_blocks'])}"]
    if meta['base_channels'] != 64 or meta['stem_channels'] != 64:
        arch.append(f"stem_channels={meta['stem_channels']}, "
                    f"base_channels={meta['base_channels']}")
    arch.append("style='pytorch'")
    lines = [
        f"model.backbone: type='ResNet', {', '.join(arch)}, "
        f"conv_cfg={meta['conv_cfg']!r}, norm_cfg={meta['norm_cfg']!r}",
        f"  (or the whole model: --norm / apply_scheme with "
        f"{meta['norm_scheme']!r}; norm_scheme = {meta['scheme']!r} labels "
        'it)',
    ]
    if meta['prefix']:
        lines.append(f"load_from = '{checkpoint}'")
    else:
        lines.append("model.backbone.init_cfg = dict(type='Pretrained', "
                     f"checkpoint='{checkpoint}')")
    lines.append("  (or, with no converted file: model.backbone.init_cfg = "
                 "dict(type='ConvertedPretrained', "
                 f"source={meta['source']!r}, checkpoint=<the source>))")
    return '\n'.join(lines)
