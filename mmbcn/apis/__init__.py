"""High-level APIs: load a config with a norm scheme, build its model,
train, test.

What ``tools/train.py`` and ``tools/test.py`` do, importable::

    from mmbcn import apis
    cfg = apis.load_config(CONFIG, norm='bcn-ws')
    runner = apis.train(cfg)
    metrics = apis.test(apis.load_config(CONFIG, norm='bcn-ws'), CHECKPOINT)
    model = apis.build_model(apis.load_config(CONFIG), CHECKPOINT)
"""
from .model import build_model
from .runner import (LAUNCHERS, amp_device_error, build_runner,
                     default_work_dir, enable_tta, enable_visualization,
                     load_config, test, train)

__all__ = [
    'LAUNCHERS', 'default_work_dir', 'load_config', 'amp_device_error',
    'build_model',
    'build_runner', 'train', 'test', 'enable_visualization', 'enable_tta'
]
