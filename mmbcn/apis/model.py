"""Build the model of a config outside a Runner (folding, export,
benchmarks, reports)."""
import copy
from typing import Optional

import torch.nn as nn
from mmengine.config import Config

from ..schemes import check_layer_types
from ..scope import config_scope, register_scope, registry


def build_model(cfg: Config, checkpoint: Optional[str] = None,
                device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` in its scope (``cfg.default_scope``), load
    ``checkpoint`` (strictly) if given; returns the model in eval mode."""
    scope = config_scope(cfg)
    register_scope(scope, init_default_scope=True)
    check_layer_types(cfg.model, scope)
    model = registry(scope, 'MODELS').build(copy.deepcopy(cfg.model))
    if checkpoint is not None:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        logger='silent')
    return model.to(device).eval()
