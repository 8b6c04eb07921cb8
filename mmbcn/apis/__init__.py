"""High-level APIs: load a config with a norm scheme, train, test.

What ``tools/train.py`` and ``tools/test.py`` do, importable::

    from mmbcn import apis
    cfg = apis.load_config(CONFIG, norm='bcn-ws')
    runner = apis.train(cfg)
    metrics = apis.test(apis.load_config(CONFIG, norm='bcn-ws'), CHECKPOINT)
"""
from .runner import (LAUNCHERS, build_runner, default_work_dir, enable_tta,
                     enable_visualization, load_config, register_scope, test,
                     train)

__all__ = [
    'LAUNCHERS', 'default_work_dir', 'load_config', 'register_scope',
    'build_runner', 'train', 'test', 'enable_visualization', 'enable_tta'
]
