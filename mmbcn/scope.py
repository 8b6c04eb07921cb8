"""mmdet or mmseg: the one place that knows the two task toolboxes.

A config's ``default_scope`` ('mmdet' or 'mmseg') says which toolbox builds
its model, datasets and runner. Everything here imports that toolbox only
when asked, so ``import mmbcn`` (the layers, the scheme table, the hooks)
needs torch, mmengine and mmcv only.

- :func:`config_scope`: the scope of a config, or a clear error;
- :func:`register_scope`: register the toolbox's modules and mmbcn's
  built-in datasets for it (what ``custom_imports`` does for mmdet's /
  mmseg's own tools);
- :func:`registry`: the toolbox's ``MODELS`` / ``RUNNERS`` / ``DATASETS``;
- :func:`lookup`: the class a module config's ``type`` names in a scope.
"""
import importlib
import inspect

#: The task toolboxes mmbcn runs, and mmbcn's datasets registered for each.
SCOPES = {'mmdet': 'mmbcn.datasets.shapes_det',
          'mmseg': 'mmbcn.datasets.shapes_seg'}


def check_scope(scope) -> str:
    if scope not in SCOPES:
        raise ValueError(
            f"default_scope={scope!r}: mmbcn runs mmdet ('mmdet') and mmseg "
            "('mmseg') configs; inherit from an mmdet:: or mmseg:: base "
            'config or set default_scope')
    return scope


def config_scope(cfg) -> str:
    """``cfg.default_scope`` if it is 'mmdet' or 'mmseg', else ValueError."""
    return check_scope(cfg.get('default_scope'))


def register_scope(scope: str, init_default_scope: bool = False) -> None:
    """Register the modules of mmdet or mmseg and mmbcn's datasets for it
    (without changing mmengine's default scope unless asked: the Runner sets
    it from ``cfg.default_scope``)."""
    utils = importlib.import_module(f'{check_scope(scope)}.utils')
    utils.register_all_modules(init_default_scope=init_default_scope)
    importlib.import_module(SCOPES[scope])


def registry(scope: str, name: str):
    """The registry ``name`` ('MODELS', 'RUNNERS', 'DATASETS', ...) of the
    scope's toolbox, with its modules registered."""
    register_scope(scope)
    return getattr(importlib.import_module(f'{scope}.registry'), name)


def lookup(type_, scope: str):
    """The class a module config's ``type`` names in ``scope`` (None if it
    names none, or is not a class)."""
    if not isinstance(type_, str):
        return type_ if inspect.isclass(type_) else None
    from mmengine.registry import MODELS
    register_scope(scope)
    with MODELS.switch_scope_and_registry(scope) as models:
        return models.get(type_)
