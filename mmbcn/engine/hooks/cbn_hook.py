"""Links Cross-Iteration BN layers to the convolutions feeding them."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.layers.cross_iteration_bn import link_cbn_convs
from ..utils import unwrap_model


@HOOKS.register_module()
class CBNLinkHook(Hook):
    """Calls :func:`~mmbcn.models.layers.link_cbn_convs` on the model before
    training, so that every ``CrossIterationBN`` can compensate with the
    weight of the conv that produced its input. ``convs`` is the number of
    convolutions hooked."""

    def __init__(self):
        self.convs = 0

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        self.convs = link_cbn_convs(model)
