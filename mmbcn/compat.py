"""Compatibility shims for the pinned stack on current torch.

Every shim names what it works around. Shims 1 and 3 are applied once, on
``import mmbcn``; shim 2 by :func:`mmbcn.apis.build_runner` before the
Runner is built.

1. Checkpoints on torch >= 2.6. torch.load now defaults to
   ``weights_only=True``; mmengine 0.10.7 calls it without the argument, and a
   runner checkpoint holds mmengine and numpy objects (the message hub's
   ``HistoryBuffer`` with numpy arrays and scalars), so ``--resume``,
   ``load_from`` and ``tools/test.py`` fail with ``UnpicklingError: Weights
   only load failed``. Upstream: open-mmlab/mmengine#1655 (report) and
   open-mmlab/mmengine#1650 (proposed fix, unreleased). The shim registers a
   loader for local files with mmengine's ``CheckpointLoader`` (its own
   extension point) that keeps weights-only loading and allows exactly the
   types such a checkpoint contains, and only while loading it.

2. Distributed training on CPU-only machines (:func:`prepare_cpu_distributed`).
   mmengine 0.10.7's pytorch / slurm launchers call ``torch.cuda.set_device``
   unconditionally (``AttributeError: module 'torch._C' has no attribute
   '_cuda_setDevice'`` on a CPU torch) and default to nccl; its Runner wraps
   the model with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU
   module; torch's SyncBatchNorm is CUDA-only. With a launcher and no CUDA,
   the shim initializes torch.distributed with gloo itself (the Runner then
   skips its ``init_dist``), sets a CPU ``model_wrapper_cfg`` and
   ``env_cfg.dist_cfg.backend='gloo'``, and turns SyncBN into a clear error
   up front. Nothing changes where CUDA is available.

3. Checkpoints written in place. mmengine 0.10.7's ``LocalBackend.put`` opens
   the target path and writes into it, so a process killed while saving
   leaves a truncated ``iter_N.pth`` (or ``last_checkpoint``) behind. The shim
   registers, through mmengine's own ``register_backend`` extension point,
   a local backend whose ``put``/``put_text`` write a temporary file in the
   same directory and ``os.replace`` it onto the target: a file is either
   the old complete one or the new complete one. ``CheckpointHook`` updates
   ``last_checkpoint`` only after the checkpoint is written, so ``--resume``
   always finds a complete checkpoint.
"""
import datetime
import os
import os.path as osp
import secrets
import subprocess

import numpy as np
import torch
from mmengine.fileio import LocalBackend
from mmengine.fileio import io as _fileio
from mmengine.fileio import register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def checkpoint_safe_globals() -> list:
    """The non-tensor types an mmengine 0.10.7 runner checkpoint contains.

    ``getattr`` is how pickle refers to the statistic methods a
    ``HistoryBuffer`` keeps; the weights-only unpickler still refuses to call
    anything that is not in this list.
    """
    from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    return [HistoryBuffer, getattr, _reconstruct, scalar, np.ndarray,
            np.dtype, *dtypes]


def load_from_local_weights_only(filename: str, map_location=None):
    """mmengine's local checkpoint loader, weights-only with the allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        return torch.load(filename, map_location=map_location,
                          weights_only=True)


if hasattr(torch.serialization, 'safe_globals'):  # torch >= 2.5
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_weights_only, force=True)


# --------------------------------------------------------------------------
# 2. Distributed training on CPU-only machines (gloo)
# --------------------------------------------------------------------------
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


def syncbn_on_cpu_error(where: list) -> CPUDistributedError:
    from .schemes import scheme_names
    others = [name for name in scheme_names() if name != 'syncbn']
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


def prepare_cpu_distributed(cfg) -> bool:
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
        raise syncbn_on_cpu_error(where)

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


# --------------------------------------------------------------------------
# 3. All-or-nothing writes of local files (checkpoints)
# --------------------------------------------------------------------------
def _create_temp(directory: str, prefix: str):
    """A new file ``<prefix><random>.tmp`` in ``directory``, opened for
    writing with the permissions ``open()`` gives (0o666 less the umask;
    ``tempfile.mkstemp`` would make it 0o600, and the checkpoint with it)."""
    for _ in range(100):
        path = osp.join(directory, f'{prefix}{secrets.token_hex(6)}.tmp')
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary file name in {directory}')


def atomic_write(data: bytes, filepath: str) -> None:
    """Write ``data`` to ``filepath`` so it is never seen half-written."""
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temp(directory, f'.{osp.basename(filepath)}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with all-or-nothing writes."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
# backend instances made before this import would still write in place
for _key, _backend in list(_fileio.backend_instances.items()):
    if type(_backend) is LocalBackend:
        del _fileio.backend_instances[_key]
