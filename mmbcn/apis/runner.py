"""Train and test mmdet / mmseg configs with a norm scheme.

The library behind ``tools/train.py`` and ``tools/test.py``; the same from a
script or a notebook::

    from mmbcn.apis import load_config, test, train

    cfg = load_config('configs/shapes/...py', norm='bcn-ws',
                      cfg_options={'train_cfg.max_iters': 100})
    runner = train(cfg)
    metrics = test(load_config('configs/shapes/...py', norm='bcn-ws'),
                   'work_dirs/..._bcn-ws/iter_100.pth')

The behaviour mirrors mmdet 3.3.0's and mmseg 1.2.2's ``tools/train.py`` /
``tools/test.py`` (work dir, ``--amp``, ``--auto-scale-lr``, ``--resume``,
``--out``, ``--show``/``--show-dir``, ``--tta``), plus:

* ``norm``: a scheme of :mod:`mmbcn.schemes` the model is rewritten for
  (the config's ``norm_scheme`` is a label, checked against the model's
  layers, and changes nothing); the default work dir then gets the
  scheme's name (``./work_dirs/<config stem>_<norm>``), so runs of one
  config with different schemes do not share a work dir;
* one entry point for mmdet and mmseg configs (chosen by ``default_scope``);
* distributed runs on CPU-only machines (gloo), see
  :func:`mmbcn.compat.prepare_cpu_distributed`;
* exact resumption: checkpoints carry the random generators' states
  (:class:`mmbcn.engine.hooks.RNGStateHook`);
* results that cannot be silently wrong: checkpoints record their norm
  scheme and loading one into another scheme is refused
  (:class:`mmbcn.engine.hooks.NormSchemeHook`), a non-finite loss or norm
  statistic stops training (:class:`mmbcn.engine.hooks.HealthCheckHook`),
  one training run per work dir (:mod:`mmbcn.apis.work_dir_lock`), and
  torchrun workers end with their launcher
  (:func:`mmbcn.distributed.exit_with_launcher`).
"""
import copy
import logging
import os
import os.path as osp
import warnings
from typing import Any, Dict, Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..compat import prepare_cpu_distributed
from ..distributed.launcher import exit_with_launcher
from ..engine.hooks import HealthCheckHook, NormSchemeHook, RNGStateHook
from ..schemes import (apply_norm, check_layer_types, check_norm_scheme,
                       check_optim_constructor, get_scheme, scheme_names)
from ..scope import config_scope, register_scope, registry
from .work_dir_lock import work_dir_lock


class ConfigBuildError(ValueError):
    """A config whose runner or model cannot be built from its arguments
    (e.g. BCN's ``num_groups`` not dividing the channels); the message
    names the module chain mmengine's registry adds and the valid values."""

#: The ``--launcher`` choices (as mmdet / mmseg / mmengine).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

PathLike = Union[str, os.PathLike]


def default_work_dir(config: str, norm: Union[str, Dict, None] = None) -> str:
    """``./work_dirs/<config stem>`` (as mmdet), ``..._<norm>`` for a scheme
    given on the command line."""
    stem = osp.splitext(osp.basename(str(config)))[0]
    if norm is not None:
        stem = f'{stem}_{get_scheme(norm).name}'
    return osp.join('./work_dirs', stem)


def _is_local_path(path: str) -> bool:
    return '://' not in path


def load_config(config: Union[PathLike, Config],
                *,
                norm: Union[str, Dict, None] = None,
                cfg_options: Optional[Dict[str, Any]] = None,
                work_dir: Optional[PathLike] = None,
                amp: bool = False,
                auto_scale_lr: bool = False,
                resume: Union[None, bool, str] = None,
                launcher: str = 'none') -> Config:
    """Load a config and apply the command-line settings of mmdet's
    ``tools/train.py`` / ``tools/test.py`` plus a norm scheme.

    Args:
        config: path of the config file (or a :class:`Config`, copied).
        norm: a scheme name of :func:`mmbcn.schemes.scheme_names` (or a dict
            with overrides): ``cfg.model`` is rewritten for it, whatever
            layers the config writes, and the log says which modules
            (:func:`mmbcn.schemes.apply_norm`). None: the model is built
            as the config writes it.
        cfg_options: ``key.sub=value`` overrides (``--cfg-options``), merged
            after ``norm`` (so they may edit its layers' arguments).
        work_dir: the work dir; else the config's ``work_dir``; else
            :func:`default_work_dir` (with ``norm`` in the name if given).
        amp: use ``AmpOptimWrapper`` with ``loss_scale='dynamic'``.
        auto_scale_lr: enable ``cfg.auto_scale_lr`` (the config must have
            ``auto_scale_lr.base_batch_size``).
        resume: None/False: as the config says. ``'auto'`` or True: resume
            from the latest checkpoint in the work dir (``cfg.resume=True``,
            ``cfg.load_from=None``; mmengine starts from scratch if there is
            none). A path: resume from that checkpoint (``cfg.resume=True``,
            ``cfg.load_from=path``).
        launcher: one of :data:`LAUNCHERS`, stored as ``cfg.launcher``.

    Raises:
        FileNotFoundError: the config (or a local ``resume`` checkpoint)
            does not exist.
        ValueError: unknown scheme or launcher, a ``norm_cfg`` / ``conv_cfg``
            of an unregistered type (naming the key and the valid types),
            a ``norm_scheme`` label that does not name the model's layer
            types (after ``norm`` and ``cfg_options``;
            :func:`mmbcn.schemes.check_norm_scheme`), mmbcn norms with
            ``paramwise_cfg`` norm / bias rules under mmengine's default
            optimizer constructor
            (:func:`mmbcn.schemes.check_optim_constructor`), a config without
            ``default_scope`` mmdet/mmseg when a scheme is applied, ``amp``
            with a custom optimizer wrapper, ``auto_scale_lr`` without
            ``auto_scale_lr.base_batch_size``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r} is not valid; choose from '
                         f'{", ".join(LAUNCHERS)}')
    # resolved once; unknown names fail before the config is read
    scheme = get_scheme(norm) if norm is not None else None
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        config_name = cfg.filename or 'config'
    else:
        config_name = str(config)
        if not osp.isfile(config_name):
            raise FileNotFoundError(
                f'config file {config_name!r} does not exist (from '
                f'{osp.abspath(".")!r})')
        cfg = Config.fromfile(config_name)
    cfg.launcher = launcher
    if norm is not None:
        apply_norm(cfg, norm)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if isinstance(cfg.get('model'), dict) and cfg.get('default_scope') in (
            'mmdet', 'mmseg'):
        check_layer_types(cfg.model, cfg.default_scope)
    check_norm_scheme(cfg, config_name)
    check_optim_constructor(cfg, config_name)
    _enable_norm_only(cfg)

    # work_dir: argument > config > ./work_dirs/<stem>[_<norm>]
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(config_name, scheme)

    if amp:
        _enable_amp(cfg)
    if auto_scale_lr:
        _enable_auto_scale_lr(cfg)

    # resume: a given checkpoint > auto resume (mmdet's semantics)
    if resume is True or resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif isinstance(resume, str) and resume:
        if _is_local_path(resume) and not osp.isfile(resume):
            raise FileNotFoundError(
                f'checkpoint to resume from {resume!r} does not exist')
        cfg.resume = True
        cfg.load_from = resume
    elif resume not in (None, False):
        raise ValueError(f"resume={resume!r} is not valid: None, 'auto' "
                         '(or True) or a checkpoint path')
    return cfg


def _enable_norm_only(cfg: Config) -> None:
    """``norm_only = True``: train only the norm layers' affine parameters
    (:class:`mmbcn.engine.hooks.NormOnlyHook`)."""
    if not cfg.get('norm_only', False):
        return
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'NormOnlyHook' for h in hooks):
        hooks.append(dict(type='NormOnlyHook'))
    cfg.custom_hooks = hooks
    # the frozen parameters never get a gradient: DDP must expect that
    cfg.find_unused_parameters = True


def amp_device_error(cfg: Config) -> Optional[str]:
    """Why ``cfg``'s AmpOptimWrapper cannot train on this machine (mmengine's
    needs a CUDA, NPU, MLU or MUSA device and asserts it), or None."""
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') != 'AmpOptimWrapper':
        return None
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    if any(f() for f in (is_cuda_available, is_npu_available,
                         is_mlu_available, is_musa_available)):
        return None
    return ('mixed precision (--amp, AmpOptimWrapper) needs a CUDA, NPU, MLU '
            'or MUSA device, and this machine has none (mmengine 0.10.7 '
            'does not train with AMP on the CPU): train without --amp, or '
            "with optim_wrapper.type='OptimWrapper'")


def _enable_amp(cfg: Config) -> None:
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise ValueError('--amp needs an optim_wrapper in the config (the '
                         'config has none: is it a training config?)')
    type_ = optim_wrapper.get('type', 'OptimWrapper')
    if type_ == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
    elif type_ != 'OptimWrapper':
        raise ValueError(
            '--amp replaces an OptimWrapper by an AmpOptimWrapper; this '
            f'config uses {type_!r}: enable mixed precision in it instead')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.loss_scale = 'dynamic'


def _enable_auto_scale_lr(cfg: Config) -> None:
    scale = cfg.get('auto_scale_lr')
    if not isinstance(scale, dict) or 'base_batch_size' not in scale:
        raise ValueError(
            '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            'config (the total batch size the learning rate was set for), '
            'e.g. auto_scale_lr = dict(enable=False, base_batch_size=16)')
    scale.enable = True


# --------------------------------------------------------------------------
# building the runner
# --------------------------------------------------------------------------
def build_runner(cfg: Config) -> Runner:
    """Build the Runner of ``cfg`` (from :func:`load_config`).

    Registers the modules of the config's scope (``default_scope``: mmdet or
    mmseg, else a ValueError naming it), prepares a distributed run on a
    CPU-only machine (:func:`mmbcn.compat.prepare_cpu_distributed`: gloo,
    CPU DDP wrapper, clear error for SyncBN) and builds the Runner with
    ``Runner.from_cfg`` or, if ``cfg.runner_type`` is set, the scope's
    ``RUNNERS`` registry. Adds, unless the config has them:

    - :class:`~mmbcn.engine.hooks.RNGStateHook`: checkpoints carry the
      generators' states and a resumed run continues exactly as an
      uninterrupted one;
    - :class:`~mmbcn.engine.hooks.NormSchemeHook`: checkpoints record their
      norm scheme, and loading one into another scheme is refused;
    - :class:`~mmbcn.engine.hooks.HealthCheckHook`: a non-finite loss or
      norm statistic stops training (``health_check = False`` in the
      config: off; ``health_check = dict(interval=N)``: every N
      iterations).
    """
    scope = config_scope(cfg)
    if cfg.get('launcher') == 'pytorch':
        exit_with_launcher()  # a worker ends with its torchrun launcher
    register_scope(scope)
    if scope == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()
    prepare_cpu_distributed(cfg, alternatives=scheme_names())
    try:
        if 'runner_type' in cfg:
            runner = registry(scope, 'RUNNERS').build(cfg)
        else:
            runner = Runner.from_cfg(cfg)
    except ValueError as error:  # a layer argument the model refuses
        raise ConfigBuildError(
            f'the config does not build: {error}') from error
    health = cfg.get('health_check', True)
    added = [(RNGStateHook, {}), (NormSchemeHook, {})]
    if health:
        added.append((HealthCheckHook,
                      dict(health) if isinstance(health, dict) else {}))
    for hook_type, kwargs in added:
        if not any(isinstance(h, hook_type) for h in runner.hooks):
            runner.register_hook(hook_type(**kwargs))
    return runner


def train(cfg: Config) -> Runner:
    """Build the Runner of ``cfg`` and train; returns the Runner.

    Mixed precision on a machine without a device for it is a ValueError
    saying what it needs (:func:`amp_device_error`).

    The work dir is locked for the run
    (:func:`~mmbcn.apis.work_dir_lock.work_dir_lock`): a second run in it
    is a :class:`~mmbcn.apis.work_dir_lock.WorkDirLockedError`.
    """
    error = amp_device_error(cfg)
    if error:
        raise ValueError(error)
    with work_dir_lock(cfg.work_dir, cfg.filename or ''):
        runner = build_runner(cfg)
        runner.train()
    return runner


# --------------------------------------------------------------------------
# testing
# --------------------------------------------------------------------------
def enable_visualization(cfg: Config, show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2.) -> Config:
    """Turn on the config's visualization hook for testing (``--show``,
    ``--show-dir``), as mmdet's / mmseg's ``trigger_visualization_hook``.

    mmdet: images go to ``<work_dir>/<timestamp>/<show_dir>``
    (``test_out_dir`` of ``DetVisualizationHook``); mmseg: the visualizer's
    ``save_dir`` becomes ``show_dir`` (under it, ``vis_data/vis_image``).
    """
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks or hooks['visualization'] is None:
        raise ValueError(
            '--show / --show-dir need a VisualizationHook in default_hooks, '
            "e.g. default_hooks = dict(visualization=dict(type="
            "'DetVisualizationHook')) (mmseg: 'SegVisualizationHook')")
    hook = hooks['visualization']
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        if config_scope(cfg) == 'mmdet':
            hook['test_out_dir'] = str(show_dir)
        else:
            cfg.visualizer['save_dir'] = str(show_dir)
    return cfg


def _has_mask_head(model_cfg) -> bool:
    if isinstance(model_cfg, dict):
        if model_cfg.get('mask_head') is not None:
            return True
        return any(_has_mask_head(v) for v in model_cfg.values())
    if isinstance(model_cfg, (list, tuple)):
        return any(_has_mask_head(v) for v in model_cfg)
    return False


def _innermost_dataset(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _default_det_tta(cfg: Config) -> None:
    """mmdet's ``tools/test.py`` defaults: flip TTA merged by DetTTAModel."""
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                         max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default.')
        pipeline = copy.deepcopy(
            _innermost_dataset(cfg.test_dataloader.dataset).pipeline)
        pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='RandomFlip', prob=1.),
                 dict(type='RandomFlip', prob=0.)],
                [dict(type='PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape',
                                 'img_shape', 'scale_factor', 'flip',
                                 'flip_direction'))],
            ])
        cfg.tta_pipeline = pipeline


def enable_tta(cfg: Config) -> Config:
    """Wrap ``cfg.model`` in ``cfg.tta_model`` and test with
    ``cfg.tta_pipeline`` (``--tta``).

    mmdet: missing ``tta_model`` / ``tta_pipeline`` get mmdet's defaults
    (flip, DetTTAModel); mmdet 3.3.0's DetTTAModel merges boxes only, so a
    model with a mask head (Mask R-CNN) is a ValueError. mmseg: the config
    must define both (mmseg's dataset bases do, with SegTTAModel).
    """
    scope = config_scope(cfg)
    if scope == 'mmdet':
        _default_det_tta(cfg)
        if cfg.tta_model.get('type') == 'DetTTAModel' and \
                _has_mask_head(cfg.model):
            raise ValueError(
                '--tta: mmdet 3.3.0 merges test-time augmented boxes only '
                '(DetTTAModel asserts that there are no masks); this model '
                'has a mask head (instance segmentation), so it cannot be '
                'tested with --tta')
    else:
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise ValueError(
                f'--tta needs {" and ".join(missing)} in the config, e.g. '
                "tta_model = dict(type='SegTTAModel') and a tta_pipeline "
                'with TestTimeAug (see mmseg::_base_/datasets/*.py)')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def test(cfg: Config, checkpoint: str, *,
         out: Optional[str] = None,
         show: bool = False,
         show_dir: Optional[str] = None,
         wait_time: float = 2.,
         tta: bool = False,
         allow_scheme_mismatch: bool = False) -> Dict[str, Any]:
    """Test ``checkpoint`` with ``cfg`` (from :func:`load_config`, with the
    scheme the checkpoint was trained with); returns the metrics.

    Args:
        out: mmdet: a ``.pkl`` / ``.pickle`` file the predictions are dumped
            to (``DumpDetResults``); mmseg: a directory the predicted label
            maps are written to (``test_evaluator.output_dir``).
        show, show_dir, wait_time: see :func:`enable_visualization`.
        tta: see :func:`enable_tta`.
        allow_scheme_mismatch: test a checkpoint whose recorded norm scheme
            differs from the config's (else a ValueError naming both, see
            :class:`~mmbcn.engine.hooks.NormSchemeHook`).
    """
    scope = config_scope(cfg)
    if _is_local_path(str(checkpoint)) and not osp.isfile(str(checkpoint)):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg.load_from = str(checkpoint)
    if allow_scheme_mismatch:
        cfg.allow_scheme_mismatch = True
    if show or show_dir:
        enable_visualization(cfg, show, show_dir, wait_time)
    if tta:
        enable_tta(cfg)
    if out is not None and scope == 'mmdet':
        if not str(out).endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out!r}: the dump file must be a pkl '
                             'file (.pkl or .pickle)')
    elif out is not None:
        evaluator = cfg.get('test_evaluator')
        if not isinstance(evaluator, dict):
            raise ValueError(
                '--out sets test_evaluator.output_dir, which needs a single '
                f'test_evaluator dict; this config has {type(evaluator)}')
        evaluator['output_dir'] = str(out)
        evaluator['keep_results'] = True

    runner = build_runner(cfg)
    if out is not None and scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=str(out)))
    return runner.test()


__all__ = [
    'LAUNCHERS', 'default_work_dir', 'load_config', 'amp_device_error',
    'build_runner', 'train', 'enable_visualization', 'enable_tta', 'test'
]
