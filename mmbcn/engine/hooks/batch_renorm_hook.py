"""The r_max / d_max schedule of Batch Renormalization, as an mmengine hook
(root HOOKS)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.layers.batch_renorm import BatchRenorm, check_clips
from ..utils import unwrap_model


def ramp(iteration: int, start: int, end: int, begin: float,
         final: float) -> float:
    """``begin`` until ``start``, linear to ``final`` at ``end``, then
    ``final``."""
    if iteration <= start:
        return begin
    if iteration >= end:
        return final
    return begin + (final - begin) * (iteration - start) / (end - start)


@HOOKS.register_module()
class BatchRenormScheduleHook(Hook):
    """Sets r_max and d_max of every :class:`BatchRenorm` before each
    training iteration: 1 and 0 (BatchNorm) until ``start_iter``, then
    linear to ``r_max`` at ``r_max_iter`` and to ``d_max`` at
    ``d_max_iter``.

    Defaults are the paper's ImageNet setting (r_max 1 -> 3 over steps
    5k-40k, d_max 0 -> 5 over 5k-25k); scale them to a run's length, or give
    them as fractions of the run with ``by_fraction=True``: then
    ``start_iter``, ``r_max_iter`` and ``d_max_iter`` are numbers in [0, 1],
    multiplied by the runner's ``max_iters`` before training (so one config
    fits any schedule, iteration- or epoch-based). The values depend only on
    the iteration, so a resumed run continues the schedule exactly.
    """

    def __init__(self, r_max: float = 3.0, d_max: float = 5.0,
                 start_iter=5000, r_max_iter=40000, d_max_iter=25000,
                 by_fraction: bool = False):
        check_clips('BatchRenormScheduleHook', r_max, d_max)
        for name, value in (('start_iter', start_iter),
                            ('r_max_iter', r_max_iter),
                            ('d_max_iter', d_max_iter)):
            if by_fraction:
                if isinstance(value, bool) or \
                        not isinstance(value, (int, float)) or \
                        not 0 <= value <= 1:
                    raise ValueError(
                        f'BatchRenormScheduleHook: {name}={value!r} is not '
                        'valid with by_fraction=True; it must be a number in '
                        '[0, 1] (a fraction of max_iters)')
            elif not isinstance(value, int) or value < 0:
                raise ValueError(f'BatchRenormScheduleHook: {name}={value!r} '
                                 'is not valid; it must be an int >= 0')
        for name, value in (('r_max_iter', r_max_iter),
                            ('d_max_iter', d_max_iter)):
            if value < start_iter:
                raise ValueError(
                    f'BatchRenormScheduleHook: {name}={value!r} is not '
                    f'valid; it must be >= start_iter={start_iter}')
        self.r_max = r_max
        self.d_max = d_max
        self.start_iter = start_iter
        self.r_max_iter = r_max_iter
        self.d_max_iter = d_max_iter
        self.by_fraction = by_fraction
        self.fractions = (start_iter, r_max_iter, d_max_iter) \
            if by_fraction else None

    def resolve(self, max_iters: int) -> None:
        """With ``by_fraction``: turn the fractions into iterations of a run
        of ``max_iters``."""
        if self.fractions is not None:
            self.start_iter, self.r_max_iter, self.d_max_iter = (
                round(f * max_iters) for f in self.fractions)

    def before_train(self, runner) -> None:
        self.resolve(runner.max_iters)

    def clips_at(self, iteration: int):
        """(r_max, d_max) at ``iteration`` (0-based)."""
        return (ramp(iteration, self.start_iter, self.r_max_iter, 1.0,
                     self.r_max),
                ramp(iteration, self.start_iter, self.d_max_iter, 0.0,
                     self.d_max))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = unwrap_model(runner.model)
        r_max, d_max = self.clips_at(runner.iter)
        for m in model.modules():
            if isinstance(m, BatchRenorm):
                m.set_clips(r_max, d_max)
