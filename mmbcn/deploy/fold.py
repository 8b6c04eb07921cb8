"""Fold Weight Standardization and BCN's batch stage into plain layers.

In eval mode both are fixed per-channel transforms, so a trained model can
be rewritten with standard torch layers only (``nn.Conv2d``,
``nn.GroupNorm``) and the same output:

- WS: a ``WSConv2d`` convolves with ``W_hat = standardize(W)``; it becomes an
  ``nn.Conv2d`` holding ``W_hat``.
- BCN: with the estimates fixed, BCN is ``GroupNorm(a * x + s)`` with
  ``a = batch_weight / sqrt(running_var + eps)`` and
  ``s = batch_bias - a * running_mean`` (per channel). Where ``x`` is the
  output of a convolution that feeds nothing else, ``a`` and ``s`` go into
  that convolution (``W' = a W``, ``b' = a b + s``); otherwise they become a
  depthwise 1x1 ``nn.Conv2d`` before the group norm. The group norm is an
  ``nn.GroupNorm(num_groups, C, eps)`` whose per-channel affine is BCN's
  (per-group weights repeated over the channels of their group).

A conv "feeds nothing else" where the module structure guarantees it: the
conv of an mmcv ``ConvModule`` whose order has the norm right after the
conv, the ``convK`` / ``normK`` pairs of mmdet's and mmseg's ResNet stems and
blocks, and a conv directly followed by the BCN in an ``nn.Sequential``
(deep stems, ``downsample``). The conv must be a plain ``nn.Conv2d`` (or
mmcv's shape-wrapper ``Conv2d``), used once in the model.
"""
import copy
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..models.layers.bcn import BCN
from ..models.layers.scaled_ws_conv import ScaledWSConv2d, scaled_ws_weight
from ..models.layers.ws_conv import WSConv2d, standardize_weight

__all__ = ['fold_norm', 'fold_ws', 'fold_bcn', 'batch_stage_affine',
           'ws_to_conv', 'scale_shift_conv', 'affine_conv',
           'group_norm_from_bcn', 'conv_norm_pairs', 'check_eval_mode',
           'assert_standard']


def check_eval_mode(model: nn.Module, what: str = 'fold_norm') -> None:
    """Raise ValueError unless ``model`` and its WS / BCN layers are in eval
    mode (folding uses BCN's estimates, which training mode updates)."""
    training = [name or type(model).__name__
                for name, m in model.named_modules()
                if m.training and (m is model or isinstance(m, (BCN,
                                                                WSConv2d)))]
    if training:
        raise ValueError(
            f'{what}: the model is in training mode ({training[0]!r}'
            f'{" and others" if len(training) > 1 else ""}); folding uses '
            'the eval-mode form of WS / BCN (BCN normalizes with its '
            'estimates only in eval mode). Call model.eval() first.')


def assert_standard(model: nn.Module) -> None:
    """Raise AssertionError if a WSConv2d or BCN (any mmbcn layer) is left."""
    left = [f'{name or "<model>"} ({type(m).__name__})'
            for name, m in model.named_modules()
            if type(m).__module__.startswith('mmbcn.')]
    if left:
        raise AssertionError(
            'folded model still has mmbcn layers (only the WS convs and BCN '
            'are folded): ' + ', '.join(left[:5]) +
            (' ...' if len(left) > 5 else ''))


def batch_stage_affine(bcn: BCN) -> Tuple[Tensor, Tensor]:
    """BCN's eval batch stage as ``x1 = a * x + s`` (float64, shape (C,))::

        a = batch_weight / sqrt(running_var + eps)
        s = batch_bias - a * running_mean
    """
    a = bcn.batch_weight.detach().double() * torch.rsqrt(
        bcn.running_var.double() + bcn.eps)
    s = bcn.batch_bias.detach().double() - a * bcn.running_mean.double()
    return a, s


def group_norm_from_bcn(bcn: BCN) -> nn.GroupNorm:
    """BCN's channel stage: ``GroupNorm(num_groups, C, eps)`` with the
    per-channel affine (a per-group weight / bias repeated over the
    ``C / G`` channels of its group)."""
    c, g = bcn.num_features, bcn.num_groups
    weight, bias = bcn.weight.detach(), bcn.bias.detach()
    if bcn.affine == 'group':
        weight = weight.repeat_interleave(c // g)
        bias = bias.repeat_interleave(c // g)
    gn = nn.GroupNorm(g, c, eps=bcn.eps, device=weight.device,
                      dtype=weight.dtype)
    with torch.no_grad():
        gn.weight.copy_(weight)
        gn.bias.copy_(bias)
    gn.weight.requires_grad_(bcn.weight.requires_grad)
    gn.bias.requires_grad_(bcn.bias.requires_grad)
    return gn.train(bcn.training)


def ws_to_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """An ``nn.Conv2d`` with the same hyper-parameters as the
    ``WSConv2d`` or ``ScaledWSConv2d`` ``conv``, holding its standardized
    weight ``W_hat`` (computed in float64) and the same bias."""
    weight = conv.weight
    plain = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size,
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
        groups=conv.groups, bias=conv.bias is not None,
        padding_mode=conv.padding_mode, device=weight.device,
        dtype=weight.dtype)
    with torch.no_grad():
        # in float64, rounded once to the weight's dtype
        if isinstance(conv, ScaledWSConv2d):
            w_hat = scaled_ws_weight(weight.double(), conv.gain.double(),
                                     conv.gamma, conv.eps)
        else:
            w_hat = standardize_weight(weight.double(), conv.eps,
                                       conv.eps_mode)
        plain.weight.copy_(w_hat.to(weight.dtype))
        if conv.bias is not None:
            plain.bias.copy_(conv.bias)
    plain.weight.requires_grad_(weight.requires_grad)
    if conv.bias is not None:
        plain.bias.requires_grad_(conv.bias.requires_grad)
    return plain.train(conv.training)


@torch.no_grad()
def scale_shift_conv(conv: nn.Conv2d, a: Tensor, s: Tensor) -> None:
    """Make ``conv`` compute ``a * conv(x) + s`` (per output channel), in
    place: ``W' = a W``, ``b' = a b + s`` (``b = 0`` and a new bias where
    the conv had none)."""
    weight = conv.weight
    shape = (-1, ) + (1, ) * (weight.dim() - 1)
    weight.copy_((weight.double() * a.view(shape)).to(weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(
            s.to(device=weight.device, dtype=weight.dtype),
            requires_grad=weight.requires_grad)
    else:
        conv.bias.copy_((a * conv.bias.double() + s).to(conv.bias.dtype))


def affine_conv(a: Tensor, s: Tensor, like: Tensor) -> nn.Conv2d:
    """A depthwise 1x1 ``nn.Conv2d`` computing ``a * x + s`` per channel
    (dtype / device of ``like``)."""
    c = a.numel()
    conv = nn.Conv2d(c, c, 1, groups=c, bias=True, device=like.device,
                     dtype=like.dtype)
    with torch.no_grad():
        conv.weight.copy_(a.view(c, 1, 1, 1))
        conv.bias.copy_(s)
    return conv


def _foldable_conv(conv) -> bool:
    """A conv whose weight / bias are all there is to its forward."""
    plain = [nn.Conv2d]
    try:
        from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d
        plain.append(MMCVConv2d)
    except ImportError:  # pragma: no cover - mmcv is a dependency
        pass
    return type(conv) in plain and \
        not getattr(conv, '_forward_pre_hooks', None) and \
        not getattr(conv, '_forward_hooks', None)


def _named_pair_classes() -> tuple:
    """Classes whose ``convK`` output feeds only the norm ``normK_name``:
    mmdet's and mmseg's ResNet (stem) and their residual blocks."""
    classes = []
    for mod in ('mmdet.models.backbones.resnet',
                'mmseg.models.backbones.resnet'):
        try:
            resnet = __import__(mod, fromlist=['ResNet'])
        except ImportError:
            continue
        classes += [resnet.ResNet, resnet.BasicBlock, resnet.Bottleneck]
    return tuple(classes)


def _conv_module_class():
    try:
        from mmcv.cnn import ConvModule
        return ConvModule
    except ImportError:  # pragma: no cover
        return None


def conv_norm_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(conv name, norm name) of every conv -> norm pair in ``model`` where
    the conv's output feeds only that norm (see the module docstring).

    Names are as in ``model.named_modules()``; neither module type nor
    channel count is checked here.
    """
    conv_module = _conv_module_class()
    named = _named_pair_classes()
    pairs = []
    for prefix, parent in model.named_modules(remove_duplicate=False):
        join = (lambda n, p=prefix: f'{p}.{n}' if p else n)
        if conv_module is not None and isinstance(parent, conv_module):
            order = tuple(parent.order)
            if parent.with_norm and not parent.with_spectral_norm and \
                    order.index('norm') == order.index('conv') + 1:
                pairs.append((join('conv'), join(parent.norm_name)))
        elif named and isinstance(parent, named):
            for k in (1, 2, 3):
                conv_name = f'conv{k}'
                norm_name = getattr(parent, f'norm{k}_name', None)
                if conv_name in parent._modules and \
                        norm_name in parent._modules:
                    pairs.append((join(conv_name), join(norm_name)))
        elif isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            pairs += [(join(c), join(n)) for c, n in zip(names, names[1:])]
    return pairs


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``model``; returns the (new) root.

    A BCN child registered as ``bcnK`` by ``build_norm_layer`` and referred
    to by a ``*_name`` attribute of its parent (``norm1_name``,
    ``ConvModule.norm_name``) is renamed ``gnK`` when ``new`` is a
    GroupNorm, as ``build_norm_layer`` names a GN: the folded model then has
    the state-dict keys of the same network built with GN.
    """
    if not name:
        return new
    parent_name, _, child = name.rpartition('.')
    parent = model.get_submodule(parent_name)
    if child not in parent._modules:
        return model  # renamed already (another path to a shared parent)
    setattr(parent, child, new)
    if isinstance(new, nn.GroupNorm) and child.startswith('bcn'):
        renamed = 'gn' + child[3:]
        refs = [k for k, v in vars(parent).items()
                if k.endswith('_name') and v == child]
        if refs and renamed not in parent._modules:
            items = [(renamed if k == child else k, v)
                     for k, v in parent._modules.items()]
            parent._modules.clear()
            parent._modules.update(items)
            for k in refs:
                setattr(parent, k, renamed)
    return model


def _use_counts(model: nn.Module) -> Dict[int, int]:
    counts: Dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        counts[id(m)] = counts.get(id(m), 0) + 1
    return counts


def fold_ws(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every ``WSConv2d`` by an ``nn.Conv2d`` holding its
    standardized weight ``W_hat = (W - mean) / sqrt(var + eps)`` per output
    filter (or ``(W - mean) / (std + eps)``: the layer's ``eps_mode``), and
    every ``ScaledWSConv2d`` by one holding its scaled standardized weight.

    The model must be in eval mode (ValueError otherwise). Returns the
    folded model: ``model`` itself if ``inplace``, else a copy.
    """
    check_eval_mode(model, 'fold_ws')
    if not inplace:
        model = copy.deepcopy(model)
    plain: Dict[int, nn.Module] = {}  # a shared conv stays shared
    for name, m in list(model.named_modules(remove_duplicate=False)):
        # a subclass may standardize otherwise
        if type(m) in (WSConv2d, ScaledWSConv2d):
            if id(m) not in plain:
                plain[id(m)] = ws_to_conv(m)
            model = _replace(model, name, plain[id(m)])
    return model


def fold_bcn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every BCN by ``nn.GroupNorm`` with its batch stage
    ``a * x + s`` folded into the conv before it, or, where there is no such
    conv, by ``nn.Sequential(depthwise 1x1 conv(a, s), GroupNorm)`` (that
    form needs a 4-D input). See the module docstring for the math.

    Run :func:`fold_ws` first: a BCN after a ``WSConv2d`` is not folded into
    it (WS would re-standardize the scaled weight) and takes the depthwise
    form. The model must be in eval mode (ValueError otherwise).
    """
    check_eval_mode(model, 'fold_bcn')
    if not inplace:
        model = copy.deepcopy(model)
    modules = dict(model.named_modules(remove_duplicate=False))
    uses = _use_counts(model)
    conv_of = {}
    for conv_name, norm_name in conv_norm_pairs(model):
        conv, norm = modules[conv_name], modules[norm_name]
        if type(norm) is BCN and _foldable_conv(conv) and \
                conv.out_channels == norm.num_features and \
                uses[id(conv)] == 1 and uses[id(norm)] == 1:
            conv_of[norm_name] = conv
    replaced: Dict[int, nn.Module] = {}  # a shared BCN stays shared
    for name, m in list(modules.items()):
        if type(m) is not BCN:  # a subclass may normalize otherwise
            continue
        if id(m) not in replaced:
            a, s = batch_stage_affine(m)
            gn = group_norm_from_bcn(m)
            if name in conv_of:
                scale_shift_conv(conv_of[name], a, s)
                replaced[id(m)] = gn
            else:
                replaced[id(m)] = nn.Sequential(
                    affine_conv(a, s, m.batch_weight), gn)
        model = _replace(model, name, replaced[id(m)])
    return model


def fold_norm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold WS and BCN for deployment: :func:`fold_ws` then
    :func:`fold_bcn`. The result has only standard torch layers where the
    model had WS / BCN (checked) and, in eval mode, the model's output.

    Raises ValueError if the model is in training mode (call ``.eval()``).
    Returns ``model`` folded in place if ``inplace``, else a folded copy.
    """
    check_eval_mode(model, 'fold_norm')
    if not inplace:
        model = copy.deepcopy(model)
    model = fold_ws(model, inplace=True)
    model = fold_bcn(model, inplace=True)
    assert_standard(model)
    return model
