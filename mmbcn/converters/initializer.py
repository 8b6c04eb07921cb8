"""Load an ImageNet ResNet of another layout as a backbone's weights.

``ConvertedPretrained`` is a weight initializer (mmengine
``WEIGHT_INITIALIZERS``, like ``Pretrained``) for a backbone's ``init_cfg``::

    backbone=dict(
        type='ResNet', depth=50, conv_cfg=..., norm_cfg=...,
        init_cfg=dict(type='ConvertedPretrained', source='bcn-ws',
                      checkpoint='checkpoints/rn50-bcn-ws.pth'))

It loads the checkpoint through mmengine (a path, ``open-mmlab://``,
``torchvision://`` or a URL: ``CheckpointLoader``, so the same loaders as
``load_from``), converts it in memory for the backbone it initializes and
reports the missing and unexpected keys. No manual conversion step; the
converter tools (``tools/model_converters/``) stay for a converted file.

Sources (:data:`INIT_SOURCES`):

``'bcn-ws'``
    the BCN authors' ImageNet BCN+WS ResNets, converted by
    :func:`mmbcn.converters.convert_resnet` (their WS semantics re-expressed
    for the backbone's ``WSConv2d``, BCN's two stages renamed);
``'gn-ws'``
    mmdet's GN+WS ResNets (``open-mmlab://jhu/resnet50_gn_ws``, ...; mmcv
    ``ConvWS`` semantics), converted the same way;
``'torchvision'``
    torchvision's BN ResNets (``torchvision://resnet50``): the names are
    mmdet's / mmseg's ``ResNet``'s, loaded as they are;
``'detectron-gn'``
    Detectron's GN ResNets as open-mmlab stores them
    (``open-mmlab://detectron/resnet50_gn``): names with ``gn{j}``, loaded as
    they are.

A checkpoint of another layout, or a backbone whose layers are not the
source's (BCN weights into a GN backbone, say), is one ValueError naming
the file, the layout expected and the one found.
"""
import logging
import re
from typing import Dict, List

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS

from .resnet import (SOURCE_WS, LayoutError, _preview, convert_resnet,
                     extract_state_dict)

#: source -> (what it is, the layout its keys have)
INIT_SOURCES: Dict[str, tuple] = {
    'bcn-ws': ("the BCN authors' ImageNet BCN+WS ResNet",
               'torchvision names, norms bn{j} with a per-group affine '
               'weight / bias (1, G, 1) and the batch stage bn{j}.pbn.*'),
    'gn-ws': ("mmdet's GN+WS ImageNet ResNet (open-mmlab://jhu/*_gn_ws)",
              'norms gn{j} / downsample.1 with weight and bias only'),
    'torchvision': ("torchvision's BatchNorm ImageNet ResNet",
                    'norms bn{j} / downsample.1 with weight, bias, '
                    'running_mean, running_var'),
    'detectron-gn': ("Detectron's GN ImageNet ResNet "
                     '(open-mmlab://detectron/resnet*_gn)',
                     'norms gn{j} / downsample.1 with weight and bias only'),
}
#: keys a source's checkpoint must have (beside the convs)
_REQUIRED = {
    'torchvision': ('conv1.weight', 'bn1.weight', 'bn1.running_mean',
                    'layer1.0.conv1.weight', 'layer1.0.bn1.running_var'),
    'detectron-gn': ('conv1.weight', 'gn1.weight', 'gn1.bias',
                     'layer1.0.conv1.weight', 'layer1.0.gn1.weight'),
}
#: the norm (and conv) the backbone must have for a source
_TARGET = {
    'bcn-ws': ('BCN', True),
    'gn-ws': ('GroupNorm', True),
    'torchvision': ('_BatchNorm', False),
    'detectron-gn': ('GroupNorm', False),
}
_HEAD = re.compile(r'^fc\.')


def describe_layout(state: Dict) -> str:
    """What a state dict looks like, in words (for error messages)."""
    keys = list(state)
    if any(k.startswith('backbone.') for k in keys):
        return ("a detector / segmentor checkpoint (keys 'backbone.*'), not "
                'an ImageNet classifier')
    if any(re.search(r'\.(batch_weight|update_rate)$', k) for k in keys):
        return 'an mmbcn BCN backbone (already converted)'
    if any('.pbn.' in k for k in keys):
        return INIT_SOURCES['bcn-ws'][0] + ' layout (bn{j}.pbn.*)'
    if any(re.search(r'(^|\.)gn\d+\.', k) for k in keys):
        return 'a GN or GN+WS ResNet layout (gn{j}.weight / bias)'
    if 'bn1.running_mean' in state:
        return 'a torchvision BatchNorm ResNet layout (bn{j}.running_mean)'
    if 'stem.0.weight' in state or 'conv1.0.weight' in state:
        return 'a deep-stem ResNet (ResNetV1c / V1d)'
    return f'an unknown layout (keys {_preview(keys)})'


def _layer_types(module: nn.Module) -> set:
    found = set()
    for m in module.modules():
        for klass in type(m).__mro__:
            found.add(klass.__name__)
    return found


def _ws_conv(module: nn.Module):
    from ..models.layers.ws_conv import WSConv2d
    return next((m for m in module.modules() if isinstance(m, WSConv2d)),
                None)


def _bcn(module: nn.Module):
    from ..models.layers.bcn import BCN
    return next((m for m in module.modules() if isinstance(m, BCN)), None)


@WEIGHT_INITIALIZERS.register_module()
class ConvertedPretrained:
    """Initialize a ResNet backbone from a checkpoint of ``source``'s
    layout, converted in memory (see the module docstring).

    Args:
        checkpoint: path or URL of the source checkpoint (anything mmengine's
            ``CheckpointLoader`` loads).
        source: a key of :data:`INIT_SOURCES`.
        map_location: where the tensors are loaded.
        strict: raise (instead of warning) on missing or unexpected keys.
    """

    def __init__(self, checkpoint: str, source: str,
                 map_location: str = 'cpu', strict: bool = False):
        if source not in INIT_SOURCES:
            raise ValueError(
                f'ConvertedPretrained: source={source!r} is not valid; '
                f'choose one of {tuple(INIT_SOURCES)}')
        self.checkpoint = checkpoint
        self.source = source
        self.map_location = map_location
        self.strict = strict
        self.missing_keys: List[str] = []
        self.unexpected_keys: List[str] = []

    def _error(self, found: str, detail: str = '') -> ValueError:
        what, layout = INIT_SOURCES[self.source]
        return ValueError(
            f'{self.checkpoint}: ConvertedPretrained(source={self.source!r}) '
            f'expects {what} ({layout}); found {found}'
            + (f' ({detail})' if detail else ''))

    def _check_target(self, module: nn.Module) -> None:
        norm, ws = _TARGET[self.source]
        types = _layer_types(module)
        has_ws = 'WSConv2d' in types
        if norm not in types or has_ws != ws:
            have = sorted(types & {'BCN', 'GroupNorm', '_BatchNorm',
                                   'EvoNormB0', 'EvoNormS0',
                                   'ChannelAffine'}) or ['no norm layers']
            want = norm.lstrip('_') + (' + WSConv2d' if ws else
                                       ' and plain convs')
            raise self._error(
                'a checkpoint for another backbone: the backbone it '
                f'initializes ({type(module).__name__}) has '
                f'{", ".join(h.lstrip("_") for h in have)}'
                + (' + WSConv2d' if has_ws else ' and plain convs')
                + f'; {self.source!r} weights need {want}')

    def convert(self, checkpoint, module: nn.Module) -> Dict:
        """The state dict to load into ``module`` (checks the layout)."""
        try:
            state = extract_state_dict(checkpoint)
        except LayoutError as err:
            raise self._error('no state dict', str(err)) from err
        if self.source in ('bcn-ws', 'gn-ws'):
            conv = _ws_conv(module)
            bcn = _bcn(module)
            try:
                result = convert_resnet(
                    state, source=self.source,
                    eps_mode=conv.eps_mode if conv else 'var',
                    source_ws=SOURCE_WS[self.source],
                    target_eps=conv.eps if conv else 1e-5,
                    update_rate=(float(bcn.update_rate) if bcn is not None
                                 else None))
            except LayoutError as err:
                raise self._error(describe_layout(state), str(err)) from err
            return result.state_dict
        missing = [k for k in _REQUIRED[self.source] if k not in state]
        if missing:
            raise self._error(describe_layout(state),
                              f'missing {missing}')
        return {k: v for k, v in state.items() if not _HEAD.match(k)}

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import CheckpointLoader
        self._check_target(module)
        checkpoint = CheckpointLoader.load_checkpoint(
            self.checkpoint, map_location=self.map_location, logger='current')
        state = self.convert(checkpoint, module)
        try:
            result = module.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shapes that do not fit
            raise self._error('tensors of other shapes',
                              str(err).strip().splitlines()[-1]) from err
        self.missing_keys = list(result.missing_keys)
        self.unexpected_keys = list(result.unexpected_keys)
        what = INIT_SOURCES[self.source][0]
        message = (f'ConvertedPretrained: {len(state)} tensors of {what} '
                   f'from {self.checkpoint} into {type(module).__name__}; '
                   f'missing keys: {self.missing_keys or "none"}; unexpected '
                   f'keys: {self.unexpected_keys or "none"}')
        if self.strict and (self.missing_keys or self.unexpected_keys):
            raise ValueError(message)
        print_log(message, logger='current',
                  level=logging.WARNING if self.missing_keys or
                  self.unexpected_keys else logging.INFO)
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return (f'{type(self).__name__}: {self.source} weights from '
                f'{self.checkpoint}, converted')


__all__ = ['ConvertedPretrained', 'INIT_SOURCES', 'describe_layout']
