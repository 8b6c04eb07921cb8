from .layers import *  # noqa: F401,F403 (registers the layers)
from .classifier import BackboneClassifier  # noqa: F401 (registers it)
