"""Stop a training run whose loss or normalization statistics are no longer
finite, instead of letting it finish with NaN weights and exit 0."""
from typing import List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.layers.norm_types import NORM_TYPES
from ..utils import unwrap_model

#: the config key that switches the check off (``health_check = False``)
CONFIG_KEY = 'health_check'


def norm_statistics(model) -> List[Tuple[str, str, torch.Tensor]]:
    """(layer name, buffer name, tensor) of the floating-point buffers
    (running statistics) of every normalization layer of ``model``."""
    model = unwrap_model(model)
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, NORM_TYPES):
            continue
        for key, buf in module.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point():
                found.append((name, key, buf))
    return found


def _any_non_finite(tensors: List[torch.Tensor]) -> torch.Tensor:
    """A 0-dim tensor, non-zero iff a tensor holds inf or NaN: ``x * 0`` is
    0 for finite x and NaN otherwise; a few fused kernels, no host sync."""
    if not tensors:
        return torch.zeros(())
    zeros = torch._foreach_mul([t.detach().float() for t in tensors], 0.0)
    total = torch.stack(torch._foreach_norm(zeros, 1)).sum()
    return (~torch.isfinite(total)).float()


def _losses(outputs) -> List[Tuple[str, torch.Tensor]]:
    if not isinstance(outputs, dict):
        return []
    return [(k, v) for k, v in outputs.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and ('loss' in k or k == 'loss')]


def _first_bad(named) -> Optional[str]:
    for name, tensor in named:
        if not bool(torch.isfinite(tensor.detach()).all()):
            return name
    return None


@HOOKS.register_module()
class HealthCheckHook(Hook):
    """Every ``interval`` training iterations, checks the losses the model
    returned and the running statistics of every normalization layer (BN,
    SyncBN, BCN, EvoNorm, ...): if any is inf or NaN, training stops with a
    ``FloatingPointError`` naming what, the layer and the iteration. Before
    a checkpoint is written, its weights are checked the same way: no
    checkpoint holds non-finite tensors.

    Cost: one fused check and one host sync per checked iteration (and one
    all-reduce of a scalar in a distributed run, so that every rank stops
    together). :func:`mmbcn.apis.build_runner` adds it to every run; set
    ``health_check = False`` in a config to train without it, or
    ``health_check = dict(interval=N)`` to check every N iterations.
    """
    priority = 'HIGH'  # before the checkpoint hook (VERY_LOW) writes

    def __init__(self, interval: int = 1):
        if interval < 1:
            raise ValueError(f'HealthCheckHook: interval={interval!r} is not '
                             'valid; it must be >= 1')
        self.interval = interval
        self._stats: Optional[list] = None

    def before_train(self, runner) -> None:
        self._stats = norm_statistics(runner.model)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if (runner.iter + 1) % self.interval:
            return
        if self._stats is None:
            self._stats = norm_statistics(runner.model)
        losses = _losses(outputs)
        flag = _any_non_finite([t for *_, t in self._stats] +
                               [t for _, t in losses])
        if get_world_size() > 1:
            flag = flag.to(next(iter(runner.model.parameters())).device)
            all_reduce(flag)
        if not bool(flag):
            return
        self._raise(runner, losses)

    def _raise(self, runner, losses) -> None:
        layer = None
        for name, key, buf in self._stats:
            if not bool(torch.isfinite(buf).all()):
                module = dict(runner.model.named_modules()).get(name)
                kind = type(module).__name__ if module is not None else 'norm'
                layer = f'{kind} layer "{name}" has non-finite {key}'
                break
        loss = _first_bad(losses)
        values = ', '.join(f'{k}={float(v.detach().float().mean()):g}'
                           for k, v in losses)
        if layer and loss:
            what = f'{layer} and the loss is non-finite ({values})'
        elif layer:
            what = layer
        elif loss:
            what = f'the loss is non-finite ({values})'
        else:
            what = 'another rank saw a non-finite loss or statistic'
        raise FloatingPointError(
            f'{what} after iteration {runner.iter + 1}; training stopped '
            'before this iteration was checkpointed (check the learning '
            'rate, the loss and the data; health_check = False in the '
            'config trains on regardless)')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict') or {}
        tensors = [(k, v) for k, v in state.items()
                   if isinstance(v, torch.Tensor) and v.is_floating_point()]
        if not bool(_any_non_finite([v for _, v in tensors])):
            return
        bad = [k for k, v in tensors if not bool(torch.isfinite(v).all())]
        step = (checkpoint.get('meta') or {}).get('iter', runner.iter)
        raise FloatingPointError(
            f'{len(bad)} of {len(tensors)} tensors of the model are '
            f'non-finite at iteration {step} (e.g. {bad[0]}): the '
            'checkpoint is not written and training stopped (check the '
            'learning rate, the loss and the data; health_check = False in '
            'the config trains on regardless)')


__all__ = ['HealthCheckHook', 'norm_statistics', 'CONFIG_KEY']
