"""Save and load folded models.

A folded model (:func:`mmbcn.deploy.fold_norm`) is the same network as the
config built with plain convs and GroupNorm (:func:`folded_config`:
``conv_cfg=None``, ``norm_cfg=dict(type='GN', num_groups, eps)``), except
where folding gave a conv a bias: BCN's shift ``s`` lands in the bias of the
conv before it, and mmdet / mmseg build those convs without one (ResNet
hard-codes ``bias=False``; ``ConvModule``'s ``bias='auto'`` drops it before a
norm), with no config option to add it. A shift that differs between the
channels of a group changes the group statistics, so it cannot move into the
GroupNorm either. Hence two formats, chosen by comparing the folded model's
state dict with that of the plain build of :func:`folded_config`:

- ``'state_dict'`` (same keys and shapes, e.g. a ``gn-ws`` model, where only
  WS is folded): an mmengine checkpoint ``{'meta', 'state_dict'}``; the
  config dump next to it rebuilds the model with plain mmdet / mmseg
  (``MODELS.build(cfg.model)`` + ``load_checkpoint(..., strict=True)``).
- ``'module'`` (BCN folded): ``{'meta', 'model'}`` with the whole folded
  ``nn.Module`` pickled by ``torch.save``; load it with
  ``torch.load(path, weights_only=False)['model']`` or
  ``load_folded(path, trust=True)`` (needs mmdet / mmseg and mmcv
  importable, not mmbcn: the module holds only their classes and torch
  layers). Unpickling a module can run code: only load such files from a
  trusted source. The config dump still
  describes the architecture; its ``folded`` entry says why the weights are
  not in a state dict.

Either way :func:`load_folded` returns the model, and the config dump sits
next to the checkpoint (``OUT`` with its suffix replaced by ``.py``).
"""
import copy
import os.path as osp
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from ..apis.model import build_model
from ..models.layers.bcn import BCN
from ..models.layers.ws_conv import WSConv2d
from .onnx import tensor_forward

__all__ = ['folded_config', 'config_path', 'folded_format',
           'state_dict_mismatch', 'save_folded', 'load_folded',
           'output_errors', 'max_output_error', 'TOLERANCE']

FORMATS = ('state_dict', 'module')

#: The largest output difference ``fold_norm.py`` and ``export_onnx.py``
#: accept by default, relative to the largest output magnitude. float32
#: rounding alone reaches ~1.5e-4 in an untrained ResNet-50 with random BCN
#: estimates (1e-5 in the shapes ResNet-18), hence 1e-3, not 1e-4.
TOLERANCE = 1e-3


def _plain_layer_cfg(node, key=None):
    """``node`` with every BCN config replaced by its GN and every WSConv2d
    config by None (``conv_cfg``) / a plain Conv2d (elsewhere)."""
    if isinstance(node, dict):
        type_ = node.get('type')
        if type_ in ('BCN', BCN):
            return dict(type='GN', num_groups=node.get('num_groups', 32),
                        eps=node.get('eps', 1e-5),
                        requires_grad=node.get('requires_grad', True))
        if type_ in ('WSConv2d', WSConv2d):
            if key == 'conv_cfg':
                return None
            rest = {k: v for k, v in node.items()
                    if k not in ('type', 'eps', 'eps_mode')}
            return dict(type='Conv2d', **rest)
        return type(node)({k: _plain_layer_cfg(v, k)
                           for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(_plain_layer_cfg(v) for v in node)
    return node


def folded_config(cfg: Config) -> Config:
    """The config of the folded network: ``cfg`` (scheme applied) with
    ``conv_cfg=None`` for WS convs and ``norm_cfg=dict(type='GN',
    num_groups, eps)`` for BCN; ``norm_scheme`` is dropped so that nothing
    re-applies BCN on rebuild."""
    folded = copy.deepcopy(cfg)
    model = folded.model.to_dict() if isinstance(folded.model, ConfigDict) \
        else folded.model
    folded.model = _plain_layer_cfg(model)
    if 'norm_scheme' in folded:
        folded.pop('norm_scheme')
    return folded


def config_path(out: str) -> str:
    """Where the config dump of checkpoint ``out`` goes."""
    root, ext = osp.splitext(out)
    if ext == '.py':
        raise ValueError(f'{out}: use another suffix than .py for the '
                         'checkpoint; the config dump goes next to it as .py')
    return root + '.py'


def state_dict_mismatch(model: nn.Module, reference: nn.Module
                        ) -> Dict[str, List[str]]:
    """Keys ``model`` lacks (``missing``), has in excess (``unexpected``) or
    holds with another shape (``shape``) against ``reference``."""
    mine, ref = model.state_dict(), reference.state_dict()
    return dict(
        missing=sorted(set(ref) - set(mine)),
        unexpected=sorted(set(mine) - set(ref)),
        shape=sorted(k for k in set(mine) & set(ref)
                     if mine[k].shape != ref[k].shape))


def _module_reason(mismatch: Dict[str, List[str]]) -> str:
    parts = []
    bias = [k for k in mismatch['unexpected'] if k.endswith('.bias')]
    if bias:
        parts.append(f'{len(bias)} convs gained a bias from BCN folding '
                     f'(e.g. {bias[0]}) where the plain GN config builds '
                     'them without one')
    other = len(mismatch['unexpected']) - len(bias)
    if other:
        parts.append(f'{other} other extra keys')
    for kind in ('missing', 'shape'):
        if mismatch[kind]:
            parts.append(f'{len(mismatch[kind])} {kind} keys '
                         f'(e.g. {mismatch[kind][0]})')
    return '; '.join(parts) + ': saved as a whole module (torch.save)'


def save_folded(model: nn.Module, cfg: Config, out: str) -> Dict:
    """Save folded ``model`` (built from ``cfg``, scheme applied) to ``out``
    and the config of the folded network to :func:`config_path`. Picks the
    format as the module docstring says; for ``'state_dict'`` it checks
    that the plain build loads the file strictly.

    Returns ``dict(format, checkpoint, config, reason)``.
    """
    plain_cfg = folded_config(cfg)
    plain = build_model(plain_cfg)
    mismatch = state_dict_mismatch(model, plain)
    fmt = 'module' if any(mismatch.values()) else 'state_dict'
    reason = _module_reason(mismatch) if fmt == 'module' else \
        'the plain config rebuilds it: build cfg.model, load_checkpoint ' \
        'strictly'
    meta = dict(mmbcn_folded=dict(
        format=fmt, norm_scheme=str(cfg.get('norm_scheme')), reason=reason))
    if fmt == 'state_dict':
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(dict(meta=meta, state_dict=state), out)
        from mmengine.runner import load_checkpoint
        load_checkpoint(plain, out, map_location='cpu', strict=True,
                        logger='silent')
    else:
        torch.save(dict(meta=meta, model=copy.deepcopy(model).cpu()), out)
    plain_cfg.folded = dict(meta['mmbcn_folded'], checkpoint=osp.basename(
        out))
    cfg_out = config_path(out)
    plain_cfg.dump(cfg_out)
    return dict(format=fmt, checkpoint=out, config=cfg_out, reason=reason)


def folded_format(path: str):
    """'state_dict' or 'module' if ``path`` is a model :func:`save_folded`
    wrote, else None (also for a URL or a missing file); read without
    unpickling anything that could run code (a 'module' file is recognised
    by its key in the pickle's bytes)."""
    import zipfile

    from ..compat import CheckpointError, load_file
    if '://' in str(path) or not osp.isfile(path):
        return None
    try:
        ckpt = load_file(path, 'cpu', trust=False)
    except CheckpointError:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist()
                       if n.endswith('/data.pkl')]
            if pickles and b'mmbcn_folded' in archive.read(pickles[0]):
                return 'module'
        return None
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    folded = meta.get('mmbcn_folded') if isinstance(meta, dict) else None
    return folded.get('format') if isinstance(folded, dict) else None


def load_folded(out: str, device: str = 'cpu', trust: bool = False
                ) -> nn.Module:
    """Load a model saved by :func:`save_folded` (eval mode).

    The ``'state_dict'`` format loads weights-only. The ``'module'`` format
    unpickles classes and so can run code: it loads only with
    ``trust=True`` (or the file listed in
    :data:`mmbcn.compat.TRUST_ENV`), else a
    :class:`mmbcn.compat.CheckpointError` names the file and the opt-in.
    """
    from ..compat import load_file
    ckpt = load_file(out, 'cpu', trust=trust or None)
    meta = ckpt.get('meta', {}).get('mmbcn_folded') \
        if isinstance(ckpt, dict) else None
    if meta is None:
        raise ValueError(f'{out} is not a checkpoint saved by save_folded')
    if meta['format'] == 'module':
        model = ckpt['model']
    else:
        model = build_model(Config.fromfile(config_path(out)), out)
    return model.to(device).eval()


@torch.no_grad()
def output_errors(model: nn.Module, other: nn.Module,
                  inputs: torch.Tensor) -> Tuple[float, float]:
    """(absolute, relative) largest difference between the tensor outputs
    of two models (see :func:`mmbcn.deploy.onnx.tensor_forward`) on
    ``inputs``; relative: each output's difference divided by its largest
    magnitude in ``model``."""
    a, b = tensor_forward(model)(inputs), tensor_forward(other)(inputs)
    a = [a] if isinstance(a, torch.Tensor) else list(a)
    b = [b] if isinstance(b, torch.Tensor) else list(b)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise AssertionError('the two models give outputs of different '
                             'shapes')
    errors = [float((x - y).abs().max()) for x, y in zip(a, b)]
    relative = [e / max(float(x.abs().max()), 1e-12)
                for e, x in zip(errors, a)]
    return max(errors), max(relative)


def max_output_error(model: nn.Module, other: nn.Module,
                     inputs: torch.Tensor) -> float:
    """The absolute error of :func:`output_errors`."""
    return output_errors(model, other, inputs)[0]
