"""Training hooks for BCN layers, registered in mmengine's root HOOKS."""
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...distributed.sync import flush_deferred
from ...models.layers.bcn import BCN
from .health_check_hook import HealthCheckHook
from ..utils import unwrap_model


def bcn_layers(model) -> List[Tuple[str, BCN]]:
    """(name, module) of every BCN in ``model`` (unwrapping DDP)."""
    model = unwrap_model(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BCN)]


@HOOKS.register_module()
class BCNDeferredSyncHook(Hook):
    """Applies the estimate updates of ``BCN(sync='deferred')`` layers after
    every training iteration, with one all-reduce for all layers together.

    ``collectives`` counts the all-reduces issued (for benchmarks).
    """
    priority = 'ABOVE_NORMAL'  # before the checkpoint / health-check hooks

    def __init__(self):
        self.collectives = 0
        self._layers: Optional[List[BCN]] = None

    def before_train(self, runner) -> None:
        self._layers = [m for _, m in bcn_layers(runner.model)
                        if m.sync == 'deferred']

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._layers:
            self.collectives += flush_deferred(self._layers)


@HOOKS.register_module()
class BCNUpdateRateHook(Hook):
    """Schedules BCN's update rate r by iteration: linear warm-up from
    ``warmup_start`` to ``rate`` over ``warmup_iters``, then constant.

    The rate lives in every layer's ``update_rate`` buffer (saved in
    checkpoints); the schedule depends only on the iteration, so a resumed
    run continues it exactly.
    """

    def __init__(self, rate: float = 0.01, warmup_iters: int = 0,
                 warmup_start: float = 1.0):
        for name, value in (('rate', rate), ('warmup_start', warmup_start)):
            if not 0 < value <= 1:
                raise ValueError(f'BCNUpdateRateHook: {name}={value!r} is '
                                 'not valid; it must be in (0, 1]')
        if warmup_iters < 0:
            raise ValueError(f'BCNUpdateRateHook: warmup_iters='
                             f'{warmup_iters!r} is not valid; it must be >= 0')
        self.rate = rate
        self.warmup_iters = warmup_iters
        self.warmup_start = warmup_start

    def rate_at(self, iteration: int) -> float:
        if iteration >= self.warmup_iters:
            return self.rate
        frac = iteration / self.warmup_iters
        return self.warmup_start + (self.rate - self.warmup_start) * frac

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        rate = self.rate_at(runner.iter)
        for _, layer in bcn_layers(runner.model):
            layer.update_rate.fill_(rate)


@HOOKS.register_module()
class BCNHealthCheckHook(HealthCheckHook):
    """The name earlier configs use for :class:`HealthCheckHook` (which
    checks BCN's estimates, every other norm's statistics and the loss;
    :func:`mmbcn.apis.build_runner` adds it to every run)."""
