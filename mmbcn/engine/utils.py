"""Small helpers the hooks share."""
import torch.nn as nn
from mmengine.model import is_model_wrapper


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside an mmengine / torch wrapper (DDP, ...), or
    ``model``."""
    return model.module if is_model_wrapper(model) else model
