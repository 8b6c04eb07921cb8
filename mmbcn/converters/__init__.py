"""Converters of pretrained checkpoints into mmbcn models.

:mod:`mmbcn.converters.resnet` turns ImageNet WS ResNets (the BCN authors'
BCN+WS nets, mmdet's GN+WS nets) into checkpoints of mmdet's / mmseg's
``ResNet`` built with the ``'bcn-ws'`` / ``'gn-ws'`` schemes; the command
lines are ``tools/model_converters/{bcn_ws,gn_ws}_resnet_to_mmdet.py``.
:class:`~mmbcn.converters.initializer.ConvertedPretrained` (registered on
``import mmbcn``) does the conversion when a backbone's ``init_cfg`` loads
the source checkpoint.
"""
from .initializer import INIT_SOURCES, ConvertedPretrained, describe_layout
from .resnet import (SOURCES, WS_SEMANTICS, ConversionResult, LayoutError,
                     convert_bcn_ws_resnet, convert_gn_ws_resnet,
                     convert_resnet, detect_source, extract_state_dict,
                     load_source, save_converted, ws_rescale_factor,
                     ws_reparametrize)

__all__ = [
    'INIT_SOURCES', 'ConvertedPretrained', 'describe_layout', 'SOURCES',
    'WS_SEMANTICS', 'ConversionResult', 'LayoutError',
    'convert_bcn_ws_resnet', 'convert_gn_ws_resnet', 'convert_resnet',
    'detect_source', 'extract_state_dict', 'load_source', 'save_converted',
    'ws_rescale_factor', 'ws_reparametrize'
]
