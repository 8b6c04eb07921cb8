from .layers import *  # noqa: F401,F403 (registers the layers)
