"""Activation memory of a training step of an mmdet ResNet, as the bytes
autograd keeps for backward (unique storages, through a saved-tensor hook),
in two modes of docs/modes.md:

    python tools/analysis/benchmark_modes_memory.py with_cp [--size 256]
    python tools/analysis/benchmark_modes_memory.py tune [--size 448]

``with_cp``: WS convs with BCN and with BN, ``with_cp`` off and on.
``tune``: frozen BN (``norm_eval``) after plain and WS convs, with and
without mmengine's ``efficient_conv_bn_eval`` on layer1-layer4. Also prints
the step time (noisy on a shared machine) and, for ``tune``, the largest
relative difference of the outputs.
"""
import argparse
import copy
import logging
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=('with_cp', 'tune'))
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=2)
    args = parser.parse_args()
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # init messages
    x = torch.randn(args.batch, 3, args.size, args.size)
    (with_cp if args.mode == 'with_cp' else tune)(args, x)


if __name__ == '__main__':
    main()
