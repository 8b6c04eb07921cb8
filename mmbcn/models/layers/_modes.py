"""What the norm layers share for the modes they train in.

- :func:`empty_output`: an input with no elements (an image without
  positive RoIs gives a mask head zero RoIs) gives an empty output and zero
  gradients, as GroupNorm and BatchNorm do, and leaves every estimate as it
  was.
- :func:`restore_layout`: the output of a kernel that works on the (N, C, L)
  view is returned in the input's shape and memory format (channels_last
  stays channels_last, as with BatchNorm and GroupNorm), and never as a view,
  so that an in-place activation after the norm is allowed also on the
  output of a checkpointed block.
- :class:`StatsMode`: the switch through which ``norm_eval`` reaches the
  estimated statistics (see its docstring).
- :class:`Replay`: what a training step normalized with, kept for its
  recomputation by activation checkpointing (same output, no second
  update of the statistics).
- :func:`check_values_per_channel`: a norm with current-batch statistics
  refuses one value per channel in training, as BatchNorm does.
- :class:`RefusesSyncBatchNormConversion`: an mmbcn layer that is a
  ``_BatchNorm`` makes torch's / mmengine's ``convert_sync_batchnorm`` fail
  instead of silently replacing it by a plain SyncBatchNorm.
- :func:`fx_leaf_call`: under ``torch.fx.symbolic_trace`` a norm is
  recorded as one call of the module, as fx records torch's own layers,
  rather than traced through its input checks and kernel dispatch.
"""
import sys
from typing import Any, List, Optional

import torch
import torch.fx
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ...compat.recompute import in_backward, may_be_recomputed

#: training steps whose statistics are kept for a recomputation
REPLAY_DEPTH = 16


class Replay:
    """Last in, first out: a training step that may be recomputed by
    checkpointing (:func:`may_be_recomputed`) remembers the constants it
    normalized with; its recomputation (a forward inside a backward) takes
    them back instead of computing and updating the statistics again."""

    def __init__(self):
        self._items: List[Any] = []

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, item: Any) -> None:
        if not may_be_recomputed():
            return
        self._items.append(item)
        if len(self._items) > REPLAY_DEPTH:
            del self._items[0]

    def take(self) -> Optional[Any]:
        """The constants of the step being recomputed, or None for an
        ordinary step."""
        if self._items and in_backward():
            return self._items.pop()
        return None


class RefusesSyncBatchNormConversion:
    """Mixin of mmbcn's ``_BatchNorm`` subclasses (BatchRenorm,
    CrossIterationBN). ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``
    and ``mmengine.model.convert_sync_batchnorm`` (the Runner's
    ``sync_bn``) replace every ``_BatchNorm`` by a plain SyncBatchNorm,
    which would drop the layer's method without a word. Both read
    ``hasattr(module, 'qconfig')`` on the module they replace; here that
    read raises when it comes from a function of that name, so the
    conversion stops with an error. ``qconfig`` otherwise behaves as an
    ordinary (absent until set) attribute."""

    @property
    def qconfig(self):
        if sys._getframe(1).f_code.co_name == 'convert_sync_batchnorm':
            name = type(self).__name__
            raise RuntimeError(
                f'{name}: convert_sync_batchnorm (sync_bn in the config) '
                f'would replace it by a plain SyncBatchNorm and lose '
                f'{name}; the layer synchronizes its statistics itself '
                '(sync=True): remove sync_bn')
        try:
            return self.__dict__['_qconfig']
        except KeyError:
            raise AttributeError('qconfig') from None

    @qconfig.setter
    def qconfig(self, value) -> None:
        self.__dict__['_qconfig'] = value

    @qconfig.deleter
    def qconfig(self) -> None:
        self.__dict__.pop('_qconfig', None)


def check_values_per_channel(count: int, x: Tensor) -> None:
    """torch's BatchNorm check: batch statistics of a single value per
    channel (variance 0) are refused in training."""
    if count == 1:
        raise ValueError('Expected more than 1 value per channel when '
                         f'training, got input size {x.size()}')


def empty_output(x: Tensor, module: torch.nn.Module) -> Tensor:
    """An empty tensor shaped like ``x``, connected to every parameter of
    ``module`` so that each gets a zero gradient (distributed training then
    sees every parameter used, as with GroupNorm's empty output)."""
    return empty_output_of(x, list(module.parameters()))


def empty_output_of(x: Tensor, params: List[Tensor]) -> Tensor:
    """:func:`empty_output` with the parameters given (TorchScript compiles
    it; it cannot iterate a module's parameters)."""
    out = x.clone()
    for p in params:
        out = out + p.reshape(-1)[:0].sum().to(out.dtype)
    return out


def fx_leaf_call(module: torch.nn.Module, x: torch.fx.Proxy):
    """Record ``module(x)`` as a ``call_module`` node of the graph ``x``
    belongs to (what fx's tracer does for a leaf module); the traced graph
    then runs the module's full forward, estimate updates included."""
    tracer = x.tracer
    return tracer.create_proxy('call_module', tracer.path_of_module(module),
                               (x, ), {})


def restore_layout(y3: Tensor, x: Tensor) -> Tensor:
    """``y3`` (N, C, L), computed from ``x.reshape(N, C, -1)``, in the shape
    of ``x``: channels_last if ``x`` is, and not a view (torch's
    ``_unsafe_view`` shares the storage without the view bookkeeping)."""
    if x.dim() == 4 and not x.is_contiguous() and \
            x.is_contiguous(memory_format=torch.channels_last):
        return y3.view(x.shape).contiguous(memory_format=torch.channels_last)
    return torch.ops.aten._unsafe_view(y3, x.shape)


class StatsMode(_BatchNorm):
    """Whether a layer's estimated statistics are in training mode.

    mmdet's and mmseg's backbones implement ``norm_eval`` (and mmengine's
    models their frozen norms) as ``m.eval()`` on every ``_BatchNorm``
    module. BCN and EvoNorm-B0 are not BatchNorms (subclassing ``_BatchNorm``
    would make mmcv's ``fuse_conv_bn``, ``efficient_conv_bn_eval`` and the
    SyncBatchNorm converters take them for BatchNorm and break them), so
    each holds one of these, a ``_BatchNorm`` without parameters, buffers or
    a forward of its own, as ``stats_mode``. The backbones' ``m.eval()``
    reaches it; the layer then normalizes with its estimates and leaves them
    alone, exactly as a BatchNorm in eval mode, while its parameters keep
    training. ``model.train()`` / ``model.eval()`` reach it like any child.
    """

    def __init__(self):
        super().__init__(0, affine=False, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError('StatsMode is a mode switch of its parent layer '
                           'and is never called')

    def extra_repr(self) -> str:
        return ''
