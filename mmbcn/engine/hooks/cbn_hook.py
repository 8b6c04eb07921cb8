"""Links Cross-Iteration BN layers to the convolutions feeding them."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.layers.cross_iteration_bn import (CrossIterationBN,
                                                  link_cbn_convs)
from ..utils import unwrap_model


@HOOKS.register_module()
class CBNLinkHook(Hook):
    """Calls :func:`~mmbcn.models.layers.link_cbn_convs` on the model before
    training, so that every ``CrossIterationBN`` can compensate with the
    weight of the conv that produced its input. ``convs`` is the number of
    convolutions hooked.

    ``burnin_fraction`` (optional, in [0, 1)): set every CBN's
    ``burnin_iters`` to that fraction of the runner's ``max_iters`` before
    training (the paper burns in for 8 of 12 epochs: 2/3), so that one
    config fits any schedule; None leaves the layers' own ``burnin_iters``.
    """

    def __init__(self, burnin_fraction: Optional[float] = None):
        if burnin_fraction is not None and (
                isinstance(burnin_fraction, bool)
                or not isinstance(burnin_fraction, (int, float))
                or not 0 <= burnin_fraction < 1):
            raise ValueError(f'CBNLinkHook: burnin_fraction='
                             f'{burnin_fraction!r} is not valid; it must be '
                             'None or a number in [0, 1)')
        self.burnin_fraction = burnin_fraction
        self.convs = 0

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        self.convs = link_cbn_convs(model)
        if self.burnin_fraction is not None:
            burnin = round(self.burnin_fraction * runner.max_iters)
            for m in model.modules():
                if isinstance(m, CrossIterationBN):
                    m.burnin_iters = burnin
