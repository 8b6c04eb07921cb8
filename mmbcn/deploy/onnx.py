"""ONNX export of folded models, checked with onnx and onnxruntime.

The export uses torch's TorchScript-based exporter (``dynamo=False``): on
torch 2.13 ``torch.onnx.export`` defaults to the torch.export-based exporter,
which needs the extra ``onnxscript`` package; the TorchScript exporter needs
only ``onnx`` (for the check) and handles these static-shape CNNs, but is
deprecated upstream and warns so (the warning is silenced here). Fold first
(:func:`mmbcn.deploy.fold_norm`): the folded graph has only standard ops
(``Conv``, GroupNorm as ``InstanceNormalization`` + ``Mul`` / ``Add``).

``onnx`` and ``onnxruntime`` are optional dependencies
(``requirements/deploy.txt``); they are imported when used.
"""
import warnings
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['TensorForward', 'tensor_forward', 'export_onnx',
           'run_onnxruntime', 'onnxruntime_errors', 'onnxruntime_max_error']

DEFAULT_OPSET = 17


class TensorForward(nn.Module):
    """The tensor path of an mmdet detector (``extract_feat``: backbone and
    neck) or an mmseg segmentor (``_forward``: decode-head logits, at the
    head's resolution); any other module is called as is. Returns a tensor
    or a tuple of tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor):
        model = self.model
        try:
            from mmseg.models.segmentors import BaseSegmentor
            if isinstance(model, BaseSegmentor):
                return model._forward(inputs)
        except ImportError:  # pragma: no cover
            pass
        try:
            from mmdet.models.detectors import BaseDetector
            if isinstance(model, BaseDetector):
                return tuple(model.extract_feat(inputs))
        except ImportError:  # pragma: no cover
            pass
        out = model(inputs)
        return tuple(out) if isinstance(out, list) else out


def tensor_forward(model: nn.Module) -> nn.Module:
    """``model`` wrapped as a module mapping an image batch to tensors."""
    return model if isinstance(model, TensorForward) else \
        TensorForward(model).eval()


def _as_list(out) -> List[Tensor]:
    return [out] if isinstance(out, Tensor) else list(out)


def export_onnx(module: nn.Module, inputs: Tensor, path: str,
                opset_version: int = DEFAULT_OPSET, check: bool = True,
                dynamic_batch: bool = False) -> List[str]:
    """Export ``module(inputs)`` (eval mode, static shapes unless
    ``dynamic_batch``) to ``path``; with ``check``, load it back and run
    ``onnx.checker.check_model``. Returns the output names."""
    module = tensor_forward(module)
    if module.training:
        raise ValueError('export_onnx: the module is in training mode; call '
                         '.eval() first')
    with torch.no_grad():
        outs = _as_list(module(inputs))
    output_names = ['output'] if len(outs) == 1 else \
        [f'output{i}' for i in range(len(outs))]
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'}
                        for name in ['input'] + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(module, (inputs, ), path, dynamo=False,
                          opset_version=opset_version,
                          input_names=['input'], output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    if check:
        import onnx
        onnx.checker.check_model(onnx.load(path), full_check=True)
    return output_names


def run_onnxruntime(path: str, inputs: Union[Tensor, np.ndarray]
                    ) -> List[np.ndarray]:
    """Run the ONNX model at ``path`` on CPU with onnxruntime (ImportError
    if it is not installed)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options,
                                   providers=['CPUExecutionProvider'])
    if isinstance(inputs, Tensor):
        inputs = inputs.detach().cpu().numpy()
    return session.run(None, {session.get_inputs()[0].name: inputs})


def onnxruntime_errors(module: nn.Module, path: str, inputs: Tensor
                       ) -> Tuple[float, float]:
    """(absolute, relative) largest difference between ``module(inputs)`` in
    torch and the exported model in onnxruntime, over all outputs;
    relative: divided by the output's largest magnitude in torch."""
    module = tensor_forward(module)
    with torch.no_grad():
        expected: Sequence[Tensor] = _as_list(module(inputs))
    got = run_onnxruntime(path, inputs)
    if len(got) != len(expected):
        raise AssertionError(f'onnxruntime gave {len(got)} outputs, torch '
                             f'{len(expected)}')
    error = relative = 0.
    for e, g in zip(expected, got):
        if tuple(e.shape) != tuple(g.shape):
            raise AssertionError(f'output shape {tuple(g.shape)} from '
                                 f'onnxruntime, {tuple(e.shape)} from torch')
        e = e.cpu().numpy()
        diff = float(np.abs(e - g).max())
        error = max(error, diff)
        relative = max(relative, diff / max(float(np.abs(e).max()), 1e-12))
    return error, relative


def onnxruntime_max_error(module: nn.Module, path: str, inputs: Tensor
                          ) -> float:
    """The absolute error of :func:`onnxruntime_errors`."""
    return onnxruntime_errors(module, path, inputs)[0]
