"""Deployment: fold WS / BCN into standard torch layers, save the folded
model, export it to ONNX.

- :mod:`.fold`: :func:`fold_norm` (WS and BCN), :func:`fold_ws`,
  :func:`fold_bcn`.
- :mod:`.checkpoint`: the plain (conv + GN) config of the folded model,
  :func:`save_folded` / :func:`load_folded`.
- :mod:`.onnx`: :func:`export_onnx`, :func:`onnxruntime_max_error` (needs
  ``onnx`` / ``onnxruntime``, see ``requirements/deploy.txt``).
"""
from .checkpoint import (folded_config, load_folded, max_output_error,
                         output_errors, save_folded)
from .fold import assert_standard, fold_bcn, fold_norm, fold_ws

__all__ = ['fold_norm', 'fold_ws', 'fold_bcn', 'assert_standard',
           'folded_config', 'save_folded', 'load_folded', 'max_output_error',
           'output_errors']
