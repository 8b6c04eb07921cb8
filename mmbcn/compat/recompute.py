"""Telling an activation-checkpointing recomputation from an ordinary
forward, for layers that update statistics in their forward.

torch's checkpointing (``torch.utils.checkpoint``, mmdet's and mmseg's
``with_cp=True``) runs the forward of a checkpointed block twice: once
without keeping activations, and again during backward to rebuild them. A
layer whose forward moves estimates (BatchNorm's running statistics, BCN's
micro-batch estimates) would move them twice, and a layer that normalizes
with its estimates would recompute a different output than it first gave.
torch offers no public "this is a recomputation" flag, so the two checks
below read autograd state through private functions that torch's own code
uses:

- :func:`in_backward`: the forward runs inside a backward pass (the
  recomputation of both reentrant and non-reentrant checkpointing happens
  there; an ordinary forward never does). ``torch._C._current_graph_task_id``
  is what ``torch.autograd.graph`` uses to tell the current backward.
- :func:`may_be_recomputed`: the forward could be recomputed later: grad
  mode is off (reentrant checkpointing runs the first forward under
  ``no_grad``) or saved-tensor hooks are installed (non-reentrant
  checkpointing installs them), via
  ``torch._C._autograd._top_saved_tensors_default_hooks``.

Upstream: pytorch/pytorch ``torch/utils/checkpoint.py`` and
``torch/autograd/graph.py`` (torch's own BatchNorm updates its running
statistics twice under checkpointing).
"""
import torch

__all__ = ['in_backward', 'may_be_recomputed']


def in_backward() -> bool:
    """Whether the caller runs inside a backward pass (a recomputation)."""
    return torch._C._current_graph_task_id() != -1


def may_be_recomputed() -> bool:
    """Whether the current forward may be recomputed by checkpointing."""
    return (not torch.is_grad_enabled() or
            torch._C._autograd._top_saved_tensors_default_hooks(False)
            is not None)
