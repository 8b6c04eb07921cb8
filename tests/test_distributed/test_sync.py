"""BCN (and EvoNorm-B0) across 2 gloo processes equal one process on the
whole batch."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmbcn import BCN
from mmbcn.distributed import flush_deferred
from mmbcn.models.layers import EvoNormB0
from repo import free_port

STEPS = 3


def make_layer(mode, sync):
    torch.manual_seed(0)
    if mode == 'evonorm-b0':
        layer = EvoNormB0(8, momentum=0.3)
    else:
        layer = BCN(8, num_groups=4, mode=mode, sync=sync, update_rate=0.3)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape) + 0.5)
    return layer


def batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 8, 5, 5, generator=g) * 2 + 1,
             torch.randn(2, 8, 5, 5, generator=g)) for _ in range(STEPS)]


def run_steps(layer, data, rank=None):
    """Forward/backward STEPS batches; rank=None: the whole batch."""
    outs, grads = [], []
    for x, g in data:
        if rank is not None:
            x, g = x[rank:rank + 1], g[rank:rank + 1]
        x = x.clone().requires_grad_(True)
        y = layer(x)
        (y * g).sum().backward()
        if getattr(layer, 'sync', None) == 'deferred':
            flush_deferred([layer])
        outs.append(y.detach())
        grads.append(x.grad)
    params = {n: p.grad.clone() for n, p in layer.named_parameters()}
    buffers = {n: b.clone() for n, b in layer.named_buffers()}
    return dict(outs=outs, grads=grads, params=params, buffers=buffers)


def worker(rank, world, port, mode, sync, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        result = run_steps(make_layer(mode, sync), batches(), rank)
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('mode, sync', [('micro', 'layer'),
                                        ('micro', 'deferred'),
                                        ('large', 'layer'),
                                        ('evonorm-b0', None)])
def test_two_ranks_equal_one_process(mode, sync, tmp_path):
    mp.spawn(worker, args=(2, free_port(), mode, sync, str(tmp_path)),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    ref = run_steps(make_layer(mode, sync), batches())
    tol = dict(rtol=1e-5, atol=1e-5)
    for step in range(STEPS):
        for r in range(2):
            torch.testing.assert_close(ranks[r]['outs'][step],
                                       ref['outs'][step][r:r + 1], **tol)
            torch.testing.assert_close(ranks[r]['grads'][step],
                                       ref['grads'][step][r:r + 1], **tol)
    for name, grad in ref['params'].items():
        # each rank holds its samples' share; DDP sums/averages them
        torch.testing.assert_close(
            ranks[0]['params'][name] + ranks[1]['params'][name], grad, **tol)
    for name, buf in ref['buffers'].items():
        for r in range(2):  # identical estimates on every rank
            torch.testing.assert_close(ranks[r]['buffers'][name], buf,
                                       **tol, msg=name)


def test_deferred_normalizes_with_previous_estimates():
    """sync='deferred': step t uses the estimates after step t - 1."""
    data = batches()
    deferred = make_layer('micro', 'deferred')
    layer = make_layer('micro', 'layer')
    for x, _ in data:
        state = {k: v.clone() for k, v in layer.state_dict().items()}
        y = deferred(x)
        lagged = make_layer('micro', 'layer').eval()
        lagged.load_state_dict(state)
        torch.testing.assert_close(y, lagged(x))
        assert len(deferred.deferred) == 1
        flush_deferred([deferred])
        layer(x)  # the same update, applied when the layer runs
        for k, v in layer.state_dict().items():
            torch.testing.assert_close(deferred.state_dict()[k], v)


def test_deferred_without_flush_is_an_error():
    layer = make_layer('micro', 'deferred')
    x = torch.randn(1, 8, 2, 2)
    with pytest.raises(RuntimeError, match='BCNDeferredSyncHook'):
        for _ in range(300):
            layer(x)


def test_deferred_needs_micro_mode():
    with pytest.raises(ValueError, match="sync='deferred' is for"):
        BCN(8, num_groups=4, mode='large', sync='deferred')
    with pytest.raises(ValueError, match="sync='all'"):
        BCN(8, num_groups=4, sync='all')
