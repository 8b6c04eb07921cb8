"""Norm-only training as a hook (config switch ``norm_only = True``)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..norm_only import freeze_all_but_norm
from ..utils import unwrap_model


@HOOKS.register_module()
class NormOnlyHook(Hook):
    """Before training, freezes every parameter except the affine
    parameters of normalization layers and logs the trainable count.

    ``mmbcn.apis.load_config`` adds it when the config says
    ``norm_only = True`` (and sets ``find_unused_parameters=True`` so DDP
    accepts the frozen parameters, which the optimizer then skips).
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        trainable, total = freeze_all_but_norm(model)
        runner.logger.info(
            f'norm-only training: {trainable:,} of {total:,} parameters '
            f'trainable ({100 * trainable / total:.2f}%): the affine '
            'parameters of the normalization layers')
