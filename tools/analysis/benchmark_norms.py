"""Cost per training step of the micro-batch normalizations next to
GroupNorm: forward + ``loss.backward()`` (every parameter's gradient), timed
interleaved with :func:`mmbcn.benchmark.timing.time_rounds`; ratios are the
median of the per-round ratios to the baseline measured in the same round.

Two tables at ResNet-50 res3 / res4 shapes: the norm alone on the feature
map, and the bottleneck's expansion conv (1x1) followed by the norm, the
pair through which CBN's Taylor terms and MABN's weight centralization
cost. A third times PRepBN against LayerNorm on Swin-T stage-3 tokens.

    python tools/analysis/benchmark_norms.py [--batch 2] [--repeats 9]
        [--input-size 800 1216] [--threads 1] [--out FILE]
"""
import argparse
import statistics

import torch
import torch.nn as nn

from mmbcn.benchmark.timing import ratio_stats, time_rounds
from mmbcn.models.layers import (BCN, FRN, MABN, BatchRenorm, CenteredConv2d,
                                 CrossIterationBN, PRepBN, link_cbn_convs)
from mmbcn.reports.tables import emit_report, markdown_table


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--input-size', type=int, nargs=2,
                        default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out')
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error(f'--repeats {args.repeats}: use at least 3')
    return args


def norms(c):
    """The norm layers compared (name -> module) for C channels."""
    return {
        'GroupNorm(32)': nn.GroupNorm(32, c),
        'BatchNorm2d': nn.BatchNorm2d(c),
        'BCN micro': BCN(c, 32),
        'FRN+TLU': FRN(c),
        'BatchRenorm': BatchRenorm(c),
        'MABN (moving)': MABN(c, buffer_size=4, warmup_iters=0),
        'CBN naive (k=4)': CrossIterationBN(c, buffer_num=3,
                                            compensate=False),
    }


def pairs(cin, c):
    """conv 1x1 (cin -> c) + norm, as in a bottleneck's conv3 / norm3."""
    out = {name: nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), norm)
           for name, norm in norms(c).items()}
    out['MABN (moving)'] = nn.Sequential(
        CenteredConv2d(cin, c, 1, bias=False),
        MABN(c, buffer_size=4, warmup_iters=0))
    out['CBN (k=4, Taylor)'] = nn.Sequential(
        nn.Conv2d(cin, c, 1, bias=False),
        CrossIterationBN(c, buffer_num=3))
    link_cbn_convs(out['CBN (k=4, Taylor)'])
    return out


def step_fn(module, x):
    g = torch.randn_like(module(x))

    def run(_round):
        module.zero_grad(set_to_none=True)
        loss = (module(x) * g).sum()
        loss.backward()
        return loss
    return run


def compare(shape_name, modules, x, repeats):
    names = list(modules)
    # a few warm-up steps: the moving-average / pooling layers past their
    # warm-up, the first-step allocations done
    for m in modules.values():
        for _ in range(5):
            step_fn(m, x)(0)
    times = time_rounds([step_fn(modules[n], x) for n in names], repeats,
                        warmup=1)
    rows = []
    for n, t in zip(names, times):
        med, q1, q3 = ratio_stats(t, times[0])
        rows.append(dict(shape=shape_name, layer=n,
                         ms=1e3 * statistics.median(t), ratio=med,
                         iqr=f'{q1:.2f}-{q3:.2f}'))
    return rows


def table(rows, base):
    return markdown_table(
        rows, ['shape', 'layer', 'ms', 'ratio', 'iqr'],
        headers=dict(ms='fwd+bwd ms', ratio=f'x {base}',
                     iqr='ratio quartiles'),
        formats=dict(ms='.1f', ratio='.2f', iqr='s'),
        right=('ms', 'ratio'))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = args.input_size
    n = args.batch
    stages = (('res3 C=512', 512, 128, h // 8, w // 8),
              ('res4 C=1024', 1024, 256, h // 16, w // 16))
    alone, paired = [], []
    for name, c, cin, fh, fw in stages:
        label = f'{name} {fh}x{fw} N={n}'
        x = torch.randn(n, c, fh, fw, requires_grad=True)
        alone += compare(label, norms(c), x, args.repeats)
        print(table(alone[-len(norms(c)):], 'GroupNorm'), flush=True)
        u = torch.randn(n, cin, fh, fw, requires_grad=True)
        rows = compare(f'1x1 {cin}->{c} + norm, {fh}x{fw} N={n}',
                       pairs(cin, c), u, args.repeats)
        paired += rows
        print(table(rows, 'conv+GroupNorm'), flush=True)
    tokens = (h // 16) * (w // 16)
    tok = torch.randn(n, tokens, 384, requires_grad=True)
    token_layers = {'LayerNorm': nn.LayerNorm(384),
                    'PRepBN lam=0.5': PRepBN(384, lam=0.5),
                    'PRepBN lam=0 (RepBN)': PRepBN(384, lam=0.0)}
    token_rows = compare(f'Swin-T stage 3: {tokens} tokens x 384, N={n}',
                         token_layers, tok, args.repeats)
    header = (f'threads={torch.get_num_threads()} torch={torch.__version__} '
              f'repeats={args.repeats} input={h}x{w} batch={n}; '
              'forward + loss.backward(), median of per-round ratios')
    text = '\n\n'.join([
        header, '### Norm alone (ratio to GroupNorm(32))', table(
            alone, 'GroupNorm'),
        '### conv 1x1 + norm (ratio to conv + GroupNorm(32))',
        table(paired, 'conv+GroupNorm'),
        '### Tokens (ratio to LayerNorm)', table(token_rows, 'LayerNorm')])
    emit_report(text, args.out)


if __name__ == '__main__':
    main()
