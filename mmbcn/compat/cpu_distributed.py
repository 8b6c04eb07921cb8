"""Shim: distributed training on CPU-only machines (gloo).

mmengine 0.10.7's pytorch / slurm launchers call ``torch.cuda.set_device``
unconditionally (``AttributeError: module 'torch._C' has no attribute
'_cuda_setDevice'`` on a CPU torch) and default to nccl; its Runner wraps the
model with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module;
torch's SyncBatchNorm is CUDA-only. With a launcher and no CUDA,
:func:`prepare_cpu_distributed` (called by :func:`mmbcn.apis.build_runner`
before the Runner is built) initializes torch.distributed with gloo itself
(the Runner then skips its ``init_dist``), sets a CPU ``model_wrapper_cfg``
and ``env_cfg.dist_cfg.backend='gloo'``, and turns SyncBN into a clear error
up front. Nothing changes where CUDA is available.
"""
import datetime
import os
import subprocess

import torch


class CPUDistributedError(RuntimeError):
    """A distributed run cannot be set up on this CPU-only machine (SyncBN in
    the model, launcher environment variables missing)."""


#: Norm types that are torch's / mmcv's SyncBatchNorm (CUDA-only).
SYNCBN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')

#: What the Runner's DDP wrapper needs for a model on CPU.
CPU_MODEL_WRAPPER = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)


def find_syncbn(cfg) -> list:
    """Where a config uses SyncBN: dotted paths of the model's norm configs
    (``model.backbone.norm_cfg``) and ``sync_bn`` if the config asks the
    Runner to convert the model (``cfg.sync_bn``)."""

    def is_syncbn(node) -> bool:
        type_ = node.get('type')
        if isinstance(type_, str):
            return type_ in SYNCBN_TYPES
        return isinstance(type_, type) and issubclass(
            type_, torch.nn.SyncBatchNorm)

    found = []

    def walk(node, path):
        if isinstance(node, dict):
            if 'type' in node and is_syncbn(node):
                found.append(path)
                return
            for key, value in node.items():
                walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}.{i}')

    walk(cfg.get('model'), 'model')
    if cfg.get('sync_bn') is not None:
        found.append('sync_bn')
    return found


def syncbn_on_cpu_error(where: list,
                        alternatives=()) -> CPUDistributedError:
    """The error for SyncBN on CPU; ``alternatives``: the schemes to
    suggest (``--norm``)."""
    others = [name for name in alternatives if name != 'syncbn'] or \
        ['NAME']
    return CPUDistributedError(
        f'the model uses SyncBN ({", ".join(where)}), which needs CUDA and '
        'NCCL; this machine has no CUDA, so distributed training runs CPU '
        'processes with the gloo backend, where torch has no SyncBatchNorm. '
        f'Use another norm scheme (--norm {"|".join(others)}), or run one '
        'process without a launcher (--launcher none), where mmengine '
        'reverts SyncBN to BN.')


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except KeyError:
        raise CPUDistributedError(
            f'environment variable {name} is not set; start distributed '
            'runs with tools/dist_train.sh (torchrun) or tools/'
            'slurm_train.sh (srun)') from None


def _first_slurm_host(node_list: str) -> str:
    """The first host of a Slurm node list (``scontrol show hostname``, as
    mmengine; a clear error instead of a garbage address without it)."""
    try:
        result = subprocess.run(['scontrol', 'show', 'hostname', node_list],
                                capture_output=True, text=True)
    except FileNotFoundError:
        result = None
    hosts = result.stdout.split() if result and result.returncode == 0 \
        else []
    if not hosts:
        raise CPUDistributedError(
            f'cannot resolve the first host of SLURM_NODELIST={node_list!r} '
            'with `scontrol show hostname`; set MASTER_ADDR')
    return hosts[0]


def cpu_dist_env(launcher: str, port=None) -> dict:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT for
    ``launcher``, read (pytorch) or derived as mmengine's ``init_dist`` does
    (slurm: ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, the first
    host of ``SLURM_NODELIST``, ``port`` or else ``MASTER_PORT`` or else
    29500; mpi: ``OMPI_COMM_WORLD_*``). Exported to ``os.environ``, as
    mmengine does."""
    env = os.environ
    if launcher == 'pytorch':
        rank, world = _env_int('RANK'), _env_int('WORLD_SIZE')
        local_rank = _env_int('LOCAL_RANK')
    elif launcher == 'slurm':
        rank, world = _env_int('SLURM_PROCID'), _env_int('SLURM_NTASKS')
        local_rank = int(env.get('SLURM_LOCALID', rank))
        if 'MASTER_ADDR' not in env:
            node_list = env.get('SLURM_NODELIST') or env.get(
                'SLURM_JOB_NODELIST')
            if node_list is None:
                raise CPUDistributedError(
                    'SLURM_NODELIST is not set; is this a Slurm job step '
                    '(srun)?')
            env['MASTER_ADDR'] = _first_slurm_host(node_list)
        if port is not None:
            env['MASTER_PORT'] = str(port)
        env.setdefault('MASTER_PORT', '29500')
    elif launcher == 'mpi':
        rank = _env_int('OMPI_COMM_WORLD_RANK')
        world = _env_int('OMPI_COMM_WORLD_SIZE')
        local_rank = _env_int('OMPI_COMM_WORLD_LOCAL_RANK')
        if 'MASTER_ADDR' not in env:
            raise CPUDistributedError(
                'environment variable MASTER_ADDR is not set (mpi launcher)')
        env.setdefault('MASTER_PORT', '29500')
    else:
        raise ValueError(f'launcher={launcher!r} is not valid; expected '
                         "'pytorch', 'slurm' or 'mpi'")
    env['RANK'], env['WORLD_SIZE'] = str(rank), str(world)
    env['LOCAL_RANK'] = str(local_rank)
    return dict(RANK=rank, WORLD_SIZE=world, LOCAL_RANK=local_rank,
                MASTER_ADDR=env.get('MASTER_ADDR'),
                MASTER_PORT=env.get('MASTER_PORT'))


def prepare_cpu_distributed(cfg, alternatives=()) -> bool:
    """Make ``cfg`` (launcher != 'none') run as CPU processes with gloo.

    Works around three things of mmengine 0.10.7 on a CPU-only torch:

    * its ``init_dist`` calls ``torch.cuda.set_device`` unconditionally
      (``AttributeError: module 'torch._C' has no attribute
      '_cuda_setDevice'``), and its default backend is nccl: this function
      initializes the default process group with gloo itself, from the
      torchrun / Slurm / MPI environment; the Runner skips its own
      ``init_dist`` when a process group exists
      (``Runner.setup_env``: ``if self.distributed and not is_distributed()``).
      ``cfg.env_cfg.dist_cfg.backend`` is set to ``'gloo'`` to match (the
      timeout and other ``dist_cfg`` keys are used).
    * the Runner wraps the model with ``device_ids=[LOCAL_RANK]``, which DDP
      rejects for a CPU module: ``cfg.model_wrapper_cfg`` is set to
      :data:`CPU_MODEL_WRAPPER` (with the config's
      ``find_unused_parameters``) unless the config sets its own, which then
      only gets ``device_ids=None`` if it is a DDP wrapper without
      ``device_ids``.
      ``broadcast_buffers=False`` (as the Runner's default): BN / BCN
      statistics are not synchronized by the wrapper.
    * torch's SyncBatchNorm is CUDA-only and fails only at the first forward
      pass: a model with SyncBN (after the norm scheme) raises a clear error
      here, before any process group exists (:func:`syncbn_on_cpu_error`).

    Returns True if it prepared a CPU run, False when there is nothing to do
    (no launcher, or CUDA is available: mmengine's own path works).
    """
    launcher = cfg.get('launcher', 'none')
    if launcher in (None, 'none') or torch.cuda.is_available():
        return False
    where = find_syncbn(cfg)
    if where:
        raise syncbn_on_cpu_error(where, alternatives)

    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            CPU_MODEL_WRAPPER,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        # the Runner adds device_ids=[LOCAL_RANK] to DDP subclasses only
        from mmengine.registry import MODEL_WRAPPERS
        wrapper_type = MODEL_WRAPPERS.get(
            wrapper.get('type', 'MMDistributedDataParallel'))
        if isinstance(wrapper_type, type) and issubclass(
                wrapper_type, torch.nn.parallel.DistributedDataParallel):
            wrapper.setdefault('device_ids', None)

    if not torch.distributed.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items()
                  if k not in ('backend', 'port', 'init_backend')}
        if kwargs.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        env = cpu_dist_env(launcher, port=dist_cfg.get('port'))
        torch.distributed.init_process_group(
            backend='gloo', init_method='env://', rank=env['RANK'],
            world_size=env['WORLD_SIZE'], **kwargs)
    else:
        # a group set up by the caller: the Runner still reads LOCAL_RANK
        # (for default device_ids it then does not use)
        os.environ.setdefault('LOCAL_RANK', '0')
    return True
