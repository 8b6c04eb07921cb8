"""Records elimination-singularity statistics during training."""
import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.diagnostics import SingularityProbe, aggregate
from ..utils import unwrap_model


@HOOKS.register_module()
class SingularityHook(Hook):
    """Every ``interval`` iterations, measures per normalization layer how
    close its channels are to elimination singularities
    (:mod:`mmbcn.models.diagnostics`), from the outputs of that
    iteration's own forward pass: training is not changed.

    Writes one JSON line per measured layer to ``<work_dir>/<filename>``
    and logs the model-level fractions as ``singularity/*`` scalars.
    """
    priority = 'LOW'

    def __init__(self, interval: int = 50, dead_threshold: float = 0.01,
                 near_threshold: float = -2.0,
                 filename: str = 'singularity.jsonl'):
        if interval < 1:
            raise ValueError(f'SingularityHook: interval={interval!r} is not '
                             'valid; it must be >= 1')
        self.interval = interval
        self.dead_threshold = dead_threshold
        self.near_threshold = near_threshold
        self.filename = filename
        self._probe = None

    def _measure(self, runner) -> bool:
        return (runner.iter + 1) % self.interval == 0 or \
            runner.iter == 0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self._measure(runner):
            return
        model = unwrap_model(runner.model)
        self._probe = SingularityProbe(model, None, self.dead_threshold,
                                       self.near_threshold).__enter__()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._probe is None:
            return
        probe, self._probe = self._probe, None
        probe.__exit__()
        stats = probe.summary()
        if not stats:
            return
        step = runner.iter + 1
        for key, value in aggregate(stats).items():
            if key != 'layers':
                runner.message_hub.update_scalar(f'train/singularity/{key}',
                                                 value)
        if runner.rank == 0:
            path = osp.join(runner.work_dir, self.filename)
            with open(path, 'a') as f:
                for s in stats:
                    f.write(json.dumps(dict(iter=step, **s.as_dict())) +
                            '\n')
