"""Activation memory of a training step of an mmdet ResNet, as the bytes
autograd keeps for backward (unique storages, through a saved-tensor hook),
in two modes of docs/modes.md:

    python tools/analysis/benchmark_modes_memory.py with_cp [--size 256]
    python tools/analysis/benchmark_modes_memory.py tune [--size 448]
    python tools/analysis/benchmark_modes_memory.py frozen-bcn [--size 224]

``with_cp``: WS convs with BCN and with BN, ``with_cp`` off and on.
``tune``: frozen BN (``norm_eval``) after plain and WS convs, with and
without mmengine's ``efficient_conv_bn_eval`` on layer1-layer4.
``frozen-bcn``: what folding BCN's frozen batch stage into the WS conv
before it could save at most. A frozen BCN (``norm_eval``) is a per-channel
affine followed by the group-normalization stage; folded into the conv, the
block would be a WS conv (with per-filter scaled weights) followed by that
stage alone, which costs what WS conv + GroupNorm costs (minus the weight
rescale, so GroupNorm is the lower bound). Compares the two as fine-tuning
steps (forward, loss, backward with every parameter's gradient), median step
time over ``--repeats`` alternating rounds.

Also prints the step time (noisy on a shared machine) and, for ``tune``, the
largest relative difference of the outputs.
"""
import argparse
import copy
import logging
import statistics
import time

import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import mmbcn  # noqa: F401 (registers the layers)


def build(depth, conv_cfg, norm_cfg, **kwargs):
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ResNet', depth=depth, frozen_stages=-1,
                              conv_cfg=conv_cfg, norm_cfg=norm_cfg, **kwargs))
    model.init_weights()
    model.train()
    return model


def step(model, x):
    """(MiB kept for backward, seconds) of one forward + backward."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(x)
    sum(o.float().mean() for o in outs).backward()
    return sum(seen.values()) / 2**20, time.perf_counter() - start


def with_cp(args, x):
    for norm in (dict(type='BCN', num_groups=32), dict(type='BN')):
        res = [step(build(args.depth, dict(type='WSConv2d'), norm,
                          norm_eval=False, with_cp=cp), x)
               for cp in (False, True)]
        (m0, t0), (m1, t1) = res
        print(f"WSConv2d+{norm['type']} ResNet-{args.depth} "
              f'{tuple(x.shape)}: {m0:.0f} MiB without with_cp, {m1:.0f} '
              f'MiB with ({100 * (1 - m1 / m0):.0f}% less); step '
              f'{t0:.2f}s -> {t1:.2f}s')


def tune(args, x):
    from mmengine.model.efficient_conv_bn_eval import \
        turn_on_efficient_conv_bn_eval
    for conv in (None, dict(type='WSConv2d')):
        plain = build(args.depth, conv, dict(type='BN'), norm_eval=True)
        tuned = copy.deepcopy(plain)
        turn_on_efficient_conv_bn_eval(
            tuned, ['layer1', 'layer2', 'layer3', 'layer4'])
        (m0, t0), (m1, t1) = step(plain, x), step(tuned, x)
        err = max(((a - b).abs().max() / a.abs().max()).item()
                  for a, b in zip(plain(x), tuned(x)))
        name = conv['type'] if conv else 'Conv2d'
        print(f'{name}+BN(frozen) ResNet-{args.depth} {tuple(x.shape)}: '
              f'{m0:.0f} -> {m1:.0f} MiB ({100 * (1 - m1 / m0):.0f}% less), '
              f'step {t0:.2f}s -> {t1:.2f}s, max relative output difference '
              f'{err:.1e}')


def frozen_bcn(args, x):
    from mmbcn.benchmark.timing import ratio_stats, time_rounds
    ws = dict(type='WSConv2d')
    models = {
        'frozen BCN': build(args.depth, ws, dict(type='BCN', num_groups=32),
                            norm_eval=True),
        'GN (folded bound)': build(args.depth, ws,
                                   dict(type='GN', num_groups=32)),
    }
    memory = {name: step(m, x)[0] for name, m in models.items()}

    def train_step(model):
        def fn(_):
            model.zero_grad(set_to_none=True)
            sum(o.float().mean() for o in model(x)).backward()
        return fn

    times = time_rounds([train_step(m) for m in models.values()],
                        args.repeats)
    ratio, q1, q3 = ratio_stats(times[1], times[0])
    for (name, mem), t in zip(memory.items(), times):
        print(f'WSConv2d+{name} ResNet-{args.depth} {tuple(x.shape)}: '
              f'{mem:.0f} MiB kept for backward, median step '
              f'{statistics.median(t):.2f}s')
    print(f'folded bound / frozen BCN: memory '
          f'{memory["GN (folded bound)"] / memory["frozen BCN"]:.3f}, step '
          f'time {ratio:.3f} (quartiles {q1:.3f}-{q3:.3f}, '
          f'{args.repeats} rounds)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=('with_cp', 'tune', 'frozen-bcn'))
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed rounds of frozen-bcn')
    args = parser.parse_args()
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # init messages
    x = torch.randn(args.batch, 3, args.size, args.size)
    modes = {'with_cp': with_cp, 'tune': tune, 'frozen-bcn': frozen_bcn}
    modes[args.mode](args, x)


if __name__ == '__main__':
    main()
