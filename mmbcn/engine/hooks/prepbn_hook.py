"""The LayerNorm -> RepBN schedule of PRepBN, as an mmengine hook."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.layers.prepbn import PRepBN
from ..utils import unwrap_model


@HOOKS.register_module()
class PRepBNScheduleHook(Hook):
    """Sets ``lam`` of every :class:`PRepBN` before each training iteration:
    1 for the first ``warmup_iters`` iterations, then linear to 0 at
    ``total_iters`` (and 0 after). After each iteration it sets the next
    iteration's ``lam``, so what follows an iteration (a validation, the
    checkpoint ``iter_N``) sees the model at ``lam_at(N)``, and a run of
    ``total_iters`` ends at lam = 0: evaluated as RepBN and ready for
    :meth:`PRepBN.reparameterize` (the last training iteration itself runs
    at ``lam_at(total_iters - 1)``). Depends only on the iteration, so a
    resumed run continues the schedule exactly. ``total_iters=None`` (the
    default) is the runner's ``max_iters``, read before training: the
    paper's decay over the whole training, for iteration- and epoch-based
    loops alike."""

    def __init__(self, total_iters: Optional[int] = None,
                 warmup_iters: int = 0):
        if not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f'PRepBNScheduleHook: warmup_iters='
                             f'{warmup_iters!r} is not valid; it must be an '
                             'int >= 0')
        self.total_iters = total_iters
        self.warmup_iters = warmup_iters
        if total_iters is not None:
            self._check_total(total_iters)

    def _check_total(self, total_iters) -> None:
        warmup_iters = self.warmup_iters
        if not isinstance(total_iters, int) or total_iters <= warmup_iters:
            raise ValueError(f'PRepBNScheduleHook: total_iters='
                             f'{total_iters!r} is not valid; it must be an '
                             f'int > warmup_iters={warmup_iters}')

    def before_train(self, runner) -> None:
        if self.total_iters is None:
            self._check_total(runner.max_iters)
            self.total_iters = runner.max_iters

    def lam_at(self, iteration: int) -> float:
        if iteration < self.warmup_iters:
            return 1.0
        done = (iteration - self.warmup_iters) / (self.total_iters -
                                                  self.warmup_iters)
        return max(0.0, 1.0 - done)

    def _set(self, runner, iteration: int) -> None:
        model = unwrap_model(runner.model)
        lam = self.lam_at(iteration)
        for m in model.modules():
            if isinstance(m, PRepBN):
                m.set_lam(lam)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._set(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        # runner.iter is still this iteration's (the loop counts after the
        # hooks): the model now stands at the next one
        self._set(runner, runner.iter + 1)
