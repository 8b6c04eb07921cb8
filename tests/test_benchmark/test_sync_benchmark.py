"""The sync-mode benchmark's counting and summary (2 gloo processes, a few
BCN layers under DDP; the full benchmark is tools/analysis/
benchmark_sync.py)."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from mmbcn import BCN
from mmbcn.reports.tables import MISSING
from mmbcn.benchmark.sync import (caller_category,
                                           count_collectives, estimate_shift,
                                           format_table, summarize)
from mmbcn.distributed import flush_deferred
from repo import free_port

LAYERS = 3


def one_step(sync):
    """Counts of one DDP training step of LAYERS conv + BCN blocks."""
    torch.manual_seed(0)
    blocks = []
    for _ in range(LAYERS):
        blocks += [nn.Conv2d(8, 8, 3, padding=1),
                   BCN(8, num_groups=4, sync=sync)]
    model = nn.parallel.DistributedDataParallel(nn.Sequential(*blocks))
    model.register_comm_hook(None, default_hooks.allreduce_hook)
    with count_collectives() as counter:
        model(torch.randn(1, 8, 6, 6)).square().mean().backward()
        if sync == 'deferred':
            flush_deferred([m for m in model.modules()
                            if isinstance(m, BCN)])
    return counter.by_category()


def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        counts = {sync: one_step(sync) for sync in ('none', 'layer',
                                                    'deferred')}
        original = dist.all_reduce is torch.distributed.distributed_c10d.\
            all_reduce
        torch.save(dict(counts=counts, restored=original),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_counts_bcn_and_ddp_collectives_per_step(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f'rank{rank}.pth')
        counts = result['counts']
        assert counts['none']['bcn'] == 0
        assert counts['layer']['bcn'] == LAYERS  # one per layer
        assert counts['deferred']['bcn'] == 1  # one for all layers
        for sync in counts:
            assert counts[sync]['ddp'] >= 1  # the gradient bucket(s)
            assert counts[sync]['other'] == 0
        assert result['restored']  # the wrappers are removed on exit


def test_caller_category():
    assert caller_category('mmbcn.distributed.sync') == 'bcn'
    assert caller_category(
        'torch.distributed.algorithms.ddp_comm_hooks.default_hooks') == 'ddp'
    assert caller_category('mmengine.dist.dist') == 'other'
    assert caller_category(None) == 'other'


def record(mode, mean, var, loss, seconds=(0.5, 0.7, 0.6), lag=()):
    return dict(mode=mode, bcn=[1, 1], ddp=[2, 2], other=[0, 0],
                seconds=list(seconds), loss=loss, lag=list(lag),
                estimates=dict(mean={'a': torch.tensor(mean)},
                               var={'a': torch.tensor(var)}))


def test_summary_against_layer():
    layer = record('layer', [0., 0.], [4., 4.], [2., 1.], (1., 1., 2.))
    lagged = record('deferred', [1., 0.], [4., 2.], [2., 2.],
                    lag=[(0.1, 0.2), (0.3, 0.4), (0.2, 0.3)])
    assert estimate_shift(lagged['estimates']['mean'],
                          lagged['estimates']['var'],
                          layer['estimates']['mean'],
                          layer['estimates']['var']) == pytest.approx(
        ((0.5 ** 2 / 2) ** 0.5, (0.5 ** 2 / 2) ** 0.5))
    rows = summarize(dict(layer=[layer, layer], deferred=[lagged, layer]))
    row = rows[1]
    assert row['sec_per_iter'] == pytest.approx(0.6)
    assert row['time_ratio'] == pytest.approx(0.5)  # paired by iteration
    assert row['lag'] == pytest.approx((0.2, 0.3))  # medians
    assert rows[0]['lag'] is None
    assert row['loss_diff'] == pytest.approx(0.25)  # ranks' mean losses
    assert row['last_loss_diff'] == pytest.approx(0.5)
    assert row['rank_spread'] > 0 and rows[0]['rank_spread'] == 0
    table = format_table(rows, 'header')
    assert table.startswith('header\n\n| sync |')
    assert '| deferred | 1 | 2 | 0 | 0.600 | 0.50 | 0.2000 / 0.3000 |' \
        in table
    assert f'| layer | 1 | 2 | 0 | 1.000 | 1.00 | {MISSING} |' in table
