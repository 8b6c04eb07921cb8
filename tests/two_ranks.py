"""2 gloo ranks x 1 sample against 1 process x 2 samples, for any layer
(test helper: the layer factory must be a module-level function)."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from repo import free_port


def run_steps(layer, data, rank=None, after_step=None):
    """Forward/backward every (x, g) of ``data``; ``rank`` takes sample
    ``rank`` of each batch (None: the whole batch)."""
    outs, grads = [], []
    for step, (x, g) in enumerate(data):
        if rank is not None:
            x, g = x[rank:rank + 1], g[rank:rank + 1]
        x = x.clone().requires_grad_(True)
        y = layer(x)
        (y * g).sum().backward()
        if after_step is not None:
            after_step(layer, step)
        outs.append(y.detach())
        grads.append(x.grad)
    params = {n: p.grad.clone() for n, p in layer.named_parameters()
              if p.grad is not None}
    buffers = {n: b.clone() for n, b in layer.named_buffers()}
    return dict(outs=outs, grads=grads, params=params, buffers=buffers)


def _worker(rank, world, port, make_layer, make_data, after_step, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        result = run_steps(make_layer(), make_data(), rank, after_step)
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def assert_two_ranks_equal_one_process(make_layer, make_data, tmp_path,
                                       after_step=None, batch_dim=0,
                                       tol=1e-5):
    """Outputs, input gradients and buffers of each rank equal those of the
    single process on both samples; the ranks' parameter gradients sum to
    the single process's."""
    mp.spawn(_worker, args=(2, free_port(), make_layer, make_data,
                            after_step, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    ref = run_steps(make_layer(), make_data(), None, after_step)
    kw = dict(rtol=tol, atol=tol)
    for step in range(len(ref['outs'])):
        for r in range(2):
            torch.testing.assert_close(ranks[r]['outs'][step],
                                       ref['outs'][step][r:r + 1], **kw)
            torch.testing.assert_close(ranks[r]['grads'][step],
                                       ref['grads'][step][r:r + 1], **kw)
    assert ref['params']
    for name, grad in ref['params'].items():
        torch.testing.assert_close(
            ranks[0]['params'][name] + ranks[1]['params'][name], grad,
            **kw, msg=name)
    for name, buf in ref['buffers'].items():
        for r in range(2):
            torch.testing.assert_close(ranks[r]['buffers'][name], buf, **kw,
                                       msg=name)
