"""Shim: one weights-only loader for every checkpoint mmbcn and its tools
read (local files, URLs and the hub cache, ``torchvision://`` /
``open-mmlab://`` / ``mmcls://`` model-zoo names, ``s3://``), applied on
``import mmbcn``.

Why: torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``, and an
mmengine 0.10.7 runner checkpoint holds mmengine and numpy objects (the
message hub's ``HistoryBuffer`` with numpy arrays), so ``--resume``,
``load_from`` and ``tools/test.py`` fail with ``UnpicklingError: Weights
only load failed`` (open-mmlab/mmengine#1655; fix proposed in #1650,
unreleased). mmengine's URL loader goes through
``torch.hub.load_state_dict_from_url(weights_only=False)``: any downloaded
or cached file would be unpickled without restriction.

What: every scheme of mmengine's ``CheckpointLoader`` (its own extension
point) is re-registered with a loader that ends in :func:`load_file`:

- weights-only unpickling, with an allow-list that reaches no callable
  that could run code: numpy's array / scalar reconstructors and dtypes,
  and stand-ins for the two non-tensor things an mmengine checkpoint
  pickles by reference: ``HistoryBuffer`` (restored from its plain data,
  never through its ``__setstate__``, which would let a file replace the
  class-wide statistics methods) and ``getattr`` (only
  ``getattr(HistoryBuffer, <statistics method name>)``, answered by a
  marker, never by an attribute);
- the allow-list is in force only while loading, and nothing process-wide
  changes;
- anything else is refused with one :class:`CheckpointError` that names the
  file, what was refused and the opt-in for files the user trusts
  (:data:`TRUST_ENV`, or ``trust=True``).

A truncated or non-checkpoint file is a :class:`CheckpointError` naming the
file too. Configs, and the config dumps in work dirs, are Python files:
reading one runs it (mmengine's ``Config.fromfile``), so only read configs
you trust.
"""
import io
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Optional, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader

#: Environment variable listing (``os.pathsep``-separated) checkpoint files
#: or URLs the user trusts: they are unpickled without restriction.
TRUST_ENV = 'MMBCN_TRUSTED_CHECKPOINTS'

_HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'
#: statistics methods a HistoryBuffer pickles by reference
_STATISTICS = frozenset(('min', 'max', 'mean', 'current'))


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded: refused, truncated or not a
    checkpoint. The message names the file."""


class _Refused(Exception):
    """Raised by the stand-ins while unpickling (caught by load_file)."""


class _StatisticRef(str):
    """What a file's ``getattr(HistoryBuffer, 'mean')`` becomes: the name,
    never the method."""


class _HistoryBufferData:
    """Stand-in for mmengine's ``HistoryBuffer`` while unpickling: keeps the
    plain data (numeric numpy arrays, an int) and nothing else; replaced by
    a real ``HistoryBuffer`` built from it after loading."""
    __slots__ = ('log_history', 'count_history', 'max_length')
    _KEYS = frozenset(('_log_history', '_count_history', 'max_length',
                       'statistics_methods'))

    def __init__(self):
        self.log_history = self.count_history = None
        self.max_length = 1000000

    def __setstate__(self, state) -> None:
        if not isinstance(state, dict) or set(state) - self._KEYS:
            raise _Refused(
                'a HistoryBuffer with state other than its log, counts and '
                f'max length ({sorted(map(str, state))!r})'
                if isinstance(state, dict) else
                f'a HistoryBuffer with a {type(state).__name__} state')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or not all(
                isinstance(v, _StatisticRef) for v in methods.values()):
            raise _Refused('a HistoryBuffer whose statistics methods are '
                           'not its own')
        for key in ('_log_history', '_count_history'):
            value = state.get(key, np.array([]))
            if not isinstance(value, np.ndarray) or value.dtype.kind not in \
                    'biuf':
                raise _Refused(f'a HistoryBuffer whose {key} is a '
                               f'{type(value).__name__}, not a numeric array')
        max_length = state.get('max_length', 1000000)
        if type(max_length) is not int:
            raise _Refused('a HistoryBuffer whose max_length is a '
                           f'{type(max_length).__name__}')
        self.log_history = state.get('_log_history', np.array([]))
        self.count_history = state.get('_count_history', np.array([]))
        self.max_length = max_length

    def restore(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        log = self.log_history if self.log_history is not None else []
        count = self.count_history if self.count_history is not None else []
        if len(log) != len(count):
            raise _Refused('a HistoryBuffer whose log and counts differ in '
                           'length')
        buffer = HistoryBuffer(max_length=self.max_length)
        buffer._log_history = np.asarray(log)
        buffer._count_history = np.asarray(count)
        return buffer


def _statistic_ref(obj, name):
    """Stand-in for ``builtins.getattr`` while unpickling."""
    if obj is _HistoryBufferData and isinstance(name, str) and \
            name in _STATISTICS:
        return _StatisticRef(name)
    what = {_statistic_ref: 'getattr', _HistoryBufferData: 'HistoryBuffer'
            }.get(obj) if callable(obj) else None
    what = what or getattr(obj, '__name__', None) or type(obj).__name__
    raise _Refused(f'getattr({what}, {name!r})')


def checkpoint_safe_globals() -> list:
    """The allow-list :func:`load_file` loads with (on top of torch's own):
    numpy arrays, scalars and dtypes, and the stand-ins for
    ``HistoryBuffer`` and ``getattr``. None of them runs code."""
    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 2 moved it; numpy.core still aliases it
        from numpy._core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    names = {'numpy.core.multiarray._reconstruct',
             'numpy._core.multiarray._reconstruct',
             'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar'}
    reconstructors = [(_reconstruct if n.endswith('_reconstruct') else scalar,
                       n) for n in sorted(names)]
    return [*reconstructors, np.ndarray, np.dtype, *dtypes,
            (_HistoryBufferData, _HISTORY_BUFFER),
            (_statistic_ref, 'builtins.getattr')]


def _restore(obj):
    """Replace the stand-ins in a loaded checkpoint by real objects."""
    if isinstance(obj, _HistoryBufferData):
        return obj.restore()
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(value, (torch.Tensor, str, int, float)):
                new = _restore(value)
                if new is not value:
                    obj[key] = new
        return obj
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            new = _restore(value)
            if new is not value:
                obj[i] = new
        return obj
    if isinstance(obj, tuple):
        items = [_restore(v) for v in obj]
        if any(a is not b for a, b in zip(items, obj)):
            return type(obj)(items) if type(obj) is tuple else \
                type(obj)(*items)
    return obj


def trusted(name: str) -> bool:
    """Whether ``name`` (a path or URL) is listed in :data:`TRUST_ENV`."""
    listed = [p for p in os.environ.get(TRUST_ENV, '').split(os.pathsep) if p]

    def norm(p):
        return p if '://' in p else osp.realpath(osp.expanduser(p))
    return norm(name) in {norm(p) for p in listed}


def _opt_in(name: str) -> str:
    return (f'if you trust this file, load it without the restriction: '
            f'{TRUST_ENV}={name} in the environment (a list separated by '
            f'{os.pathsep!r}), or trust=True from Python')


_REFUSED = (
    re.compile(r'Unsupported global: GLOBAL (\S+)'),
    re.compile(r'whose module (\S+) is blocked'),
    re.compile(r'unrecognized function (.+?)(?: which belongs|$)', re.M),
    re.compile(r'Can only create new object for .* but got (.+)$', re.M),
    re.compile(r'Can only build .* but got (.+)$', re.M),
    re.compile(r'Can only (?:append to|extend|set items of) \w+s?, but got '
               r'(.+)$', re.M),
)
_CORRUPT = ('truncated', 'invalid load key', 'EOF', 'failed finding central '
            'directory', 'invalid header', 'PytorchStreamReader', 'unpickling '
            'stack underflow', 'could not find MARK', 'magic number')


def _refused_what(message: str) -> Optional[str]:
    for pattern in _REFUSED:
        match = pattern.search(message)
        if match:
            return match.group(1).rstrip('.')
    if 'Unsupported operand' in message:
        return 'a pickle instruction outside the weights-only subset'
    return None


def load_file(source: Union[str, os.PathLike, io.IOBase],
              map_location: Any = None, *, trust: Optional[bool] = None,
              name: Optional[str] = None) -> Any:
    """Load a checkpoint file (a path or a binary file object) weights-only
    with :func:`checkpoint_safe_globals`.

    ``trust=True`` (or the file listed in :data:`TRUST_ENV`) unpickles
    without restriction: only for files you trust. ``name`` names the
    source in errors (a URL for a downloaded file).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file holds something the weights-only load
            refuses (naming it, and the opt-in), or is not a readable
            checkpoint (truncated, random bytes, ...).
    """
    if isinstance(source, (str, os.PathLike)):
        source = osp.expanduser(os.fspath(source))
        if not osp.isfile(source):
            raise FileNotFoundError(f'checkpoint {source} does not exist')
        name = name or source
    name = name or f'<{type(source).__name__}>'
    if trust is None:
        trust = trusted(name)
    if trust:
        try:
            return torch.load(source, map_location=map_location,
                              weights_only=False)
        except (pickle.UnpicklingError, EOFError, OSError, RuntimeError,
                zipfile.BadZipFile, ValueError) as err:
            raise CheckpointError(_corrupt_message(name, err)) from None
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            checkpoint = torch.load(source, map_location=map_location,
                                    weights_only=True)
        return _restore(checkpoint)
    except _Refused as err:
        raise CheckpointError(
            f'{name}: refused to load: it holds {err}, which could run code '
            f'while loading; {_opt_in(name)}') from None
    except pickle.UnpicklingError as err:
        what = _refused_what(str(err))
        if what and what.startswith('a pickle instruction') and not (
                isinstance(source, str) and zipfile.is_zipfile(source)):
            what = None  # garbage, not a torch.save archive
        if what is None or any(m in str(err) for m in _CORRUPT):
            raise CheckpointError(_corrupt_message(name, err)) from None
        raise CheckpointError(
            f'{name}: refused to load: it holds {what}, which a weights-only '
            f'load does not allow (it could run code while loading); '
            f'{_opt_in(name)}') from None
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile, ValueError,
            TypeError, AttributeError, KeyError, IndexError) as err:
        raise CheckpointError(_corrupt_message(name, err)) from None


def _corrupt_message(name: str, err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if not ln.startswith(
        ('Weights only load failed', 'In PyTorch', '(1)', '(2)',
         'Please file', 'Check the documentation', 'WeightsUnpickler'))),
        lines[0] if lines else '')
    return (f'{name}: not a readable checkpoint (truncated, or not a file '
            f'torch.save wrote): {type(err).__name__}: {detail[:200]}')


def load_from_local_weights_only(filename: str, map_location=None):
    """mmengine's local checkpoint loader, through :func:`load_file`."""
    return load_file(filename, map_location)


# --------------------------------------------------------------------------
# URLs and model zoos
# --------------------------------------------------------------------------
def _extract_legacy_zip(cached: str, model_dir: str) -> str:
    """torch.hub's legacy zip format (a zip holding one file): extract it,
    as ``torch.hub.load_state_dict_from_url`` does, and return its path."""
    with zipfile.ZipFile(cached) as archive:
        members = archive.infolist()
        if len(members) != 1:
            raise CheckpointError(f'{cached}: a zip file holding '
                                  f'{len(members)} files, expected one')
        member = members[0]
        if member.is_dir() or osp.isabs(member.filename) or \
                '..' in member.filename.replace('\\', '/').split('/'):
            raise CheckpointError(f'{cached}: a zip member with an unsafe '
                                  f'name {member.filename!r}')
        archive.extractall(model_dir, [member])
        return osp.join(model_dir, member.filename)


def cached_download(url: str, model_dir: Optional[str] = None,
                    progress: bool = False) -> str:
    """The file of ``url`` in torch.hub's cache (``<hub dir>/checkpoints``,
    or ``model_dir``), downloaded if it is not there; same names as
    ``torch.hub.load_state_dict_from_url``."""
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached):
        print(f'Downloading: "{url}" to {cached}', flush=True)
        torch.hub.download_url_to_file(url, cached, None, progress=progress)
    if zipfile.is_zipfile(cached) and torch.hub._is_legacy_zip_format(
            cached):
        return _extract_legacy_zip(cached, model_dir)
    return cached


def load_from_url(url: str, map_location=None, model_dir=None,
                  progress: bool = False):
    """mmengine's http(s) loader: download once (local rank 0 first in a
    distributed run), then :func:`load_file` the cached file; errors name
    the URL and the cached file."""
    from mmengine.dist import get_dist_info

    def load():
        cached = cached_download(url, model_dir, progress)
        trust = trusted(url) or trusted(cached)
        return load_file(cached, map_location, trust=trust,
                         name=f'{url} (cached as {cached})')
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = load()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load()
    return checkpoint


def _load_from_torchvision(filename, map_location=None):
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    return load_from_url(get_torchvision_models()[name], map_location)


def _load_from_openmmlab(filename, map_location=None):
    from mmengine.runner import checkpoint as mm
    prefix, name = filename.split('://', 1)
    name = mm.get_deprecated_model_names().get(name, name)
    url = mm.get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_url(url, map_location)
    return load_file(osp.join(mm._get_mmengine_home(), url), map_location)


def _load_from_mmcls(filename, map_location=None):
    from mmengine.runner import checkpoint as mm
    url = mm.get_mmcls_models()[filename[len('mmcls://'):]]
    return mm._process_mmcls_checkpoint(load_from_url(url, map_location))


def _load_from_ceph(filename, map_location=None, backend='petrel'):
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args={
        'backend': backend}).get(filename)
    return load_file(io.BytesIO(data), map_location, name=filename,
                     trust=trusted(filename))


def _refuse_pavi(filename, map_location=None):
    raise CheckpointError(f'{filename}: pavi:// checkpoints are not '
                          'supported by mmbcn; download the file and load it '
                          'by its path')


#: prefix(es) -> loader, registered over mmengine's
LOADERS = {
    '': load_from_local_weights_only,
    ('http://', 'https://'): load_from_url,
    ('modelzoo://', 'torchvision://'): _load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): _load_from_openmmlab,
    'mmcls://': _load_from_mmcls,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): _load_from_ceph,
    'pavi://': _refuse_pavi,
}


def register_loaders() -> None:
    """Register :data:`LOADERS` with mmengine's ``CheckpointLoader``."""
    for prefixes, loader in LOADERS.items():
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader,
                                         force=True)


register_loaders()

__all__ = ['TRUST_ENV', 'CheckpointError', 'checkpoint_safe_globals',
           'load_file', 'load_from_local_weights_only', 'load_from_url',
           'cached_download', 'register_loaders', 'trusted']
