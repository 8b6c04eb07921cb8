"""BCN's cross-rank sync modes compared in real distributed training.

:func:`benchmark_sync` trains the same model (same seed, data and
initialization) with each BCN ``sync`` mode, each mode in its own group of
``nproc`` CPU processes with gloo (``torch.multiprocessing.spawn``), through
:mod:`mmbcn.apis` (the CPU DDP wrapper,
:class:`~mmbcn.engine.hooks.BCNDeferredSyncHook` for ``'deferred'``). The
groups take turns iteration by iteration (:class:`Turns`): one mode trains
at a time, and on a machine whose load varies every mode is timed under the
same conditions. Measured per iteration:

* collectives, counted by wrapping ``torch.distributed``'s collective
  functions in each process (:func:`count_collectives`) and attributed to
  their caller: BCN (``mmbcn.*``), DDP's gradient buckets (DDP reduces them
  through torch's stock ``allreduce_hook`` comm hook, which calls
  ``torch.distributed.all_reduce``; the reduction is DDP's default) and
  anything else;
* seconds, from the iteration's first hook (data already loaded) to after
  the deferred flush;
* the loss; for ``'deferred'`` the one-step lag itself: how far the
  estimates a step normalized with are from the updated ones that
  ``'layer'`` would have used with the same weights and data;
* at the end, every BCN layer's estimates on every rank.

:func:`summarize` turns this into one row per mode, comparing with
``'layer'`` (which equals one process on the whole batch).
"""
import collections
import contextlib
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ..apis import build_runner, load_config
from ..engine.hooks import bcn_layers
from ..reports.tables import format_value, markdown_table

#: BCN sync modes, in table order.
SYNC_MODES = ('none', 'layer', 'deferred')

#: The collective functions of torch.distributed that are counted.
COLLECTIVES = ('all_reduce', 'all_reduce_coalesced', 'all_gather',
               'all_gather_into_tensor', 'all_gather_object', 'broadcast',
               'broadcast_object_list', 'reduce', 'reduce_scatter',
               'reduce_scatter_tensor', 'all_to_all', 'barrier')


def caller_category(module: Optional[str]) -> str:
    """'bcn', 'ddp' or 'other' for the module that called a collective."""
    module = module or ''
    if module == 'mmbcn' or module.startswith('mmbcn.'):
        return 'bcn'
    if module.startswith('torch.distributed.algorithms.ddp_comm_hooks'):
        return 'ddp'
    return 'other'


class CollectiveCounter:
    """Counts of collective calls by (category, function)."""

    def __init__(self):
        self.counts = collections.Counter()

    def total(self, category: Optional[str] = None) -> int:
        return sum(n for (cat, _), n in self.counts.items()
                   if category is None or cat == category)

    def by_category(self) -> Dict[str, int]:
        return {cat: self.total(cat) for cat in ('bcn', 'ddp', 'other')}


@contextlib.contextmanager
def count_collectives():
    """Count calls of :data:`COLLECTIVES` (``torch.distributed.<name>``,
    looked up at call time, as mmbcn, mmengine and DDP's comm hooks do)
    while the context is open; yields a :class:`CollectiveCounter`."""
    counter = CollectiveCounter()
    originals = {name: getattr(dist, name) for name in COLLECTIVES
                 if hasattr(dist, name)}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get('__name__')
            counter.counts[(caller_category(caller), name)] += 1
            return fn(*args, **kwargs)
        return wrapper

    for name, fn in originals.items():
        setattr(dist, name, counting(name, fn))
    try:
        yield counter
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)


def estimate_shift(mean: Dict[str, torch.Tensor], var: Dict[str, torch.Tensor],
                   ref_mean: Dict[str, torch.Tensor],
                   ref_var: Dict[str, torch.Tensor]) -> Tuple[float, float]:
    """How far BCN estimates are from reference ones, as the largest over
    layers of the channels' RMS of ``|mean - ref_mean| / sqrt(ref_var)``
    (the shift of the normalized output) and of ``|var - ref_var| /
    ref_var``."""
    if mean.keys() != ref_mean.keys():
        raise ValueError('the two sets of estimates have different layers')
    shift = ratio = 0.
    for name in ref_mean:
        ref_v = ref_var[name].double().clamp(min=1e-12)
        d_mean = (mean[name].double() - ref_mean[name].double()) \
            / ref_v.sqrt()
        d_var = (var[name].double() - ref_v) / ref_v
        shift = max(shift, float(d_mean.square().mean().sqrt()))
        ratio = max(ratio, float(d_var.square().mean().sqrt()))
    return shift, ratio


# --------------------------------------------------------------------------
# the distributed part: one process group of ``nproc`` ranks per mode
# --------------------------------------------------------------------------
class Turns:
    """Lets the modes' process groups train one iteration each in turn (the
    ranks of a mode together), so that every mode is timed under the same
    machine load. Built from a multiprocessing context before the processes
    start; the first turn begins once every process is ready to train."""

    def __init__(self, ctx, num_modes: int, nproc: int,
                 timeout: float = 600.):
        self.num_modes, self.nproc, self.timeout = num_modes, nproc, timeout
        self.cond = ctx.Condition()
        self.turn = ctx.Value('i', -1, lock=False)  # -1: not started
        self.count = ctx.Value('i', 0, lock=False)  # arrivals in this turn
        self.finished = ctx.Array('i', num_modes, lock=False)

    def _wait(self, predicate, what: str) -> None:
        if not self.cond.wait_for(predicate, self.timeout):
            raise TimeoutError(f'benchmark_sync: waited {self.timeout} s '
                               f'for {what}; did another process fail?')

    def _advance(self, mode: int) -> None:
        """Give the turn to the next unfinished mode (-2: all finished)."""
        self.count.value = 0
        for step in range(1, self.num_modes + 1):
            nxt = (mode + step) % self.num_modes
            if not self.finished[nxt]:
                self.turn.value = nxt
                break
        else:
            self.turn.value = -2
        self.cond.notify_all()

    def ready(self) -> None:
        with self.cond:
            self.count.value += 1
            if self.count.value == self.num_modes * self.nproc:
                self._advance(self.num_modes - 1)  # mode 0 starts

    def wait_turn(self, mode: int) -> None:
        with self.cond:
            self._wait(lambda: self.turn.value == mode, f'the turn of mode '
                       f'{mode}')

    def end_turn(self, mode: int, last: bool) -> None:
        with self.cond:
            if last:
                self.finished[mode] = 1
            self.count.value += 1
            if self.count.value == self.nproc:
                self._advance(mode)

    def wait_all_finished(self) -> None:
        with self.cond:
            self._wait(lambda: self.turn.value == -2, 'all modes to finish')


class _WaitForTurn:
    """Stands in for the loop's data iterator: a batch is loaded only in
    the mode's turn."""

    def __init__(self, inner, turns: Turns, mode: int):
        self.inner, self.turns, self.mode = inner, turns, mode

    def __iter__(self):
        return self

    def __next__(self):
        self.turns.wait_turn(self.mode)
        return next(self.inner)


def _probe_hooks(counter: CollectiveCounter, record: dict, warmup: int,
                 total: int, turns: Turns, mode_index: int):
    """Hooks around each training iteration: the first hook of
    before_train_iter starts the clock and the collective count, the
    after_train_iter hook right after BCNDeferredSyncHook's flush stops
    them (a snapshot of the estimates before the flush, for the lag, is not
    timed), the last after_train_iter hook ends the mode's turn."""
    from mmengine.hooks import Hook
    deferred = record['mode'] == 'deferred'

    class Start(Hook):
        priority = 'HIGHEST'

        def before_train(self, runner):
            loop = runner.train_loop
            loop.dataloader_iterator = _WaitForTurn(
                loop.dataloader_iterator, turns, mode_index)
            turns.ready()

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            record['_counts'] = counter.by_category()
            record['_untimed'] = 0.
            record['_start'] = time.perf_counter()

    class BeforeFlush(Hook):
        priority = 'HIGH'  # BCNDeferredSyncHook is ABOVE_NORMAL

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            if deferred:
                start = time.perf_counter()
                record['_before_flush'] = _bcn_estimates(runner.model)
                record['_untimed'] += time.perf_counter() - start

    class Stop(Hook):
        priority = 'NORMAL'  # after BCNDeferredSyncHook

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            seconds = time.perf_counter() - record['_start'] - \
                record['_untimed']
            now = counter.by_category()
            counts = {k: now[k] - record['_counts'][k] for k in now}
            if runner.iter >= warmup:  # timed
                for key, value in counts.items():
                    record[key].append(value)
                record['seconds'].append(seconds)
                if deferred:  # what the step used vs. what 'layer' uses
                    used = record['_before_flush']
                    updated = _bcn_estimates(runner.model)
                    record['lag'].append(estimate_shift(
                        used['mean'], used['var'], updated['mean'],
                        updated['var']))
            record['loss'].append(float(outputs['loss']))
            done = runner.iter + 1
            if runner.rank == 0 and (done % 5 == 0 or done == total):
                print(f"  {record['mode']}: iter {done}/{total}"
                      f"  {seconds:.3f} s  collectives {counts}",
                      flush=True)

    class EndTurn(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            turns.end_turn(mode_index, last=runner.iter + 1 == total)

    return Start(), BeforeFlush(), Stop(), EndTurn()


def _bcn_estimates(model) -> Dict[str, Dict[str, torch.Tensor]]:
    layers = bcn_layers(model)
    return dict(
        mean={n: m.running_mean.detach().clone() for n, m in layers},
        var={n: m.running_var.detach().clone() for n, m in layers})


def _train(mode: str, mode_index: int, config: str, norm: str,
           cfg_options: dict, work_dir: str, warmup: int, iters: int,
           turns: Turns, counter: CollectiveCounter) -> dict:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    cfg = load_config(
        config, norm=dict(name=norm, norm=dict(sync=mode)),
        cfg_options=dict(cfg_options, **{
            'train_cfg.max_iters': warmup + iters}),
        work_dir=os.path.join(work_dir, mode), launcher='pytorch')
    cfg.log_level = 'WARNING'
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.custom_hooks = [dict(type='BCNDeferredSyncHook')] \
        if mode == 'deferred' else []
    # BCN's and DDP's collectives only: the health check's one scalar
    # all-reduce per iteration is the same in every mode
    cfg.health_check = False
    runner = build_runner(cfg)
    runner.model.register_comm_hook(None, default_hooks.allreduce_hook)
    record = dict(mode=mode, bcn=[], ddp=[], other=[], seconds=[], loss=[],
                  lag=[])
    for hook in _probe_hooks(counter, record, warmup, warmup + iters, turns,
                             mode_index):
        runner.register_hook(hook)
    runner.train()
    turns.wait_all_finished()
    for key in [k for k in record if k.startswith('_')]:
        del record[key]
    record['estimates'] = _bcn_estimates(runner.model)
    return record


def _worker(index: int, nproc: int, ports: Sequence[int],
            modes: Sequence[str], config: str, norm: str, cfg_options: dict,
            work_dir: str, warmup: int, iters: int, threads: int,
            out_dir: str, turns: Turns) -> None:
    mode_index, rank = divmod(index, nproc)
    mode = modes[mode_index]
    os.environ.update(MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(ports[mode_index]), RANK=str(rank),
                      WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    warnings.filterwarnings('ignore')  # the deprecation notes of the stack
    dist.init_process_group('gloo', rank=rank, world_size=nproc)
    try:
        with count_collectives() as counter:
            record = _train(mode, mode_index, config, norm, cfg_options,
                            work_dir, warmup, iters, turns, counter)
        torch.save(record, os.path.join(out_dir, f'{mode}_rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def free_ports(count: int) -> List[int]:
    """``count`` distinct free TCP ports on localhost."""
    import socket
    ports: List[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def benchmark_sync(config: str, data_root: str, *,
                   modes: Sequence[str] = SYNC_MODES, norm: str = 'bcn-ws',
                   iters: int = 20, warmup: int = 3, nproc: int = 2,
                   threads: int = 1, work_dir: Optional[str] = None,
                   cfg_options: Optional[dict] = None) -> Dict[str, list]:
    """Train ``config`` (an mmdet / mmseg config with data under
    ``data_root``, e.g. a shapes config) with scheme ``norm`` and each BCN
    sync mode in ``modes``: ``nproc`` gloo processes of ``threads`` torch
    threads per mode, ``warmup`` + ``iters`` iterations, the modes taking
    turns. Returns ``{mode: [record of each rank]}`` with the lists
    ``bcn``, ``ddp``, ``other`` (collectives of each timed iteration),
    ``seconds`` (timed iterations), ``loss`` (every iteration) and
    ``estimates`` (``{'mean'|'var': {layer: tensor}}`` at the end)."""
    unknown = [m for m in modes if m not in SYNC_MODES]
    if unknown or not modes:
        raise ValueError(f'modes={list(modes)!r} is not valid: choose from '
                         f'{", ".join(SYNC_MODES)}')
    if norm not in ('bcn', 'bcn-ws'):
        raise ValueError(f"norm={norm!r} is not valid: 'bcn' or 'bcn-ws' "
                         '(a scheme with BCN layers)')
    for name, value, low in (('iters', iters, 3), ('warmup', warmup, 0),
                             ('nproc', nproc, 2), ('threads', threads, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f'{name}={value!r} is not valid: an integer '
                             f'>= {low}')
    if not os.path.isfile(config):
        raise FileNotFoundError(f'config {config!r} does not exist')
    options = shapes_options(data_root)
    options.update(cfg_options or {})
    import torch.multiprocessing as mp
    turns = Turns(mp.get_context('spawn'), len(modes), nproc)
    ports = free_ports(len(modes))
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, nprocs=len(modes) * nproc, join=True, args=(
            nproc, ports, list(modes), config, norm, options,
            work_dir or os.path.join(tmp, 'work_dirs'), warmup, iters,
            threads, tmp, turns))
        return {mode: [torch.load(os.path.join(tmp, f'{mode}_rank{r}.pth'),
                                  weights_only=True)
                       for r in range(nproc)] for mode in modes}


def shapes_options(data_root: str) -> dict:
    """``cfg_options`` for a shapes config: training data under
    ``data_root`` loaded in the training process, no checkpoints or log
    lines (validation is switched off by the benchmark)."""
    root = data_root.rstrip('/') + '/'
    return {
        'train_dataloader.dataset.data_root': root,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'default_hooks.checkpoint.interval': -1,
        'default_hooks.checkpoint.save_last': False,
        'default_hooks.logger.interval': 10 ** 9,
        'randomness.seed': 0,
        'randomness.deterministic': True,
    }


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------
def _per_iter(values: List[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f'{low}-{high}'


def _shift(record: dict, reference: dict) -> Tuple[float, float]:
    est, ref = record['estimates'], reference['estimates']
    return estimate_shift(est['mean'], est['var'], ref['mean'], ref['var'])


def summarize(results: Dict[str, list]) -> List[dict]:
    """One row per mode (rank 0's numbers unless said otherwise):

    * ``bcn``, ``ddp``, ``other``: collectives per timed iteration;
    * ``sec_per_iter``: median seconds per timed iteration;
    * ``time_ratio``: median over iterations of the ratio to 'layer''s time
      of the same iteration (same data; the modes ran in turns);
    * ``lag``: 'deferred' only, the median over iterations of the shift
      between the estimates a step normalized with and the updated ones
      'layer' normalizes with (:func:`estimate_shift`: mean, var);
    * ``est_shift``: the estimates' shift from 'layer''s after the run;
    * ``loss_diff`` / ``last_loss_diff``: loss minus 'layer''s (mean of the
      ranks' losses, over all iterations / of the last one);
    * ``rank_spread``: the largest shift between rank 0's estimates and
      another rank's.
    """
    rows = []
    reference = results.get('layer')

    def mean_loss(ranks, last=False):
        return statistics.mean(r['loss'][-1] if last else
                               statistics.mean(r['loss']) for r in ranks)

    for mode, ranks in results.items():
        first = ranks[0]
        row = dict(mode=mode, bcn=_per_iter(first['bcn']),
                   ddp=_per_iter(first['ddp']),
                   other=_per_iter(first['other']),
                   sec_per_iter=statistics.median(first['seconds']),
                   loss=mean_loss(ranks), lag=None)
        if first['lag']:
            row['lag'] = tuple(statistics.median(v)
                               for v in zip(*first['lag']))
        row['rank_spread'] = max(max(_shift(r, first)) for r in ranks[1:])
        if reference is not None:
            ref = reference[0]
            row['time_ratio'] = statistics.median(
                t / r for t, r in zip(first['seconds'], ref['seconds']))
            row['est_shift'] = _shift(first, ref)
            row['loss_diff'] = row['loss'] - mean_loss(reference)
            row['last_loss_diff'] = mean_loss(ranks, True) - mean_loss(
                reference, True)
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict], header: str = '') -> str:
    """A markdown table of :func:`summarize`'s rows."""
    columns = ('mode', 'bcn', 'ddp', 'other', 'sec_per_iter', 'time_ratio',
               'lag', 'est_shift', 'loss_diff', 'rank_spread')
    table = markdown_table(
        rows, columns,
        headers=dict(
            mode='sync', bcn='BCN collectives / iter',
            ddp='DDP gradient all-reduces / iter',
            other='other collectives / iter', sec_per_iter='s / iter (median)',
            time_ratio="time vs 'layer' (median ratio)",
            lag='one-step lag: mean shift / var change',
            est_shift="estimates vs 'layer' at the end: mean shift / var "
            'change', loss_diff="loss vs 'layer': mean / last iter",
            rank_spread='rank spread'),
        formats=dict(
            time_ratio='.2f', lag='.4f',
            loss_diff=lambda r: format_value(r.get('loss_diff'), '+.4f') +
            ' / ' + format_value(r.get('last_loss_diff'), '+.4f')),
        right=columns[1:])
    return f'{header}\n\n{table}' if header else table
