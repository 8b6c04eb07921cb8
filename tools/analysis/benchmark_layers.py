"""Benchmark BCN / WSConv2d against torch and mmcv layers at ResNet-50/FPN
feature-map shapes; prints markdown tables with ratios to the baseline
(GroupNorm for norms, nn.Conv2d for convolutions) measured in the same run.

    python tools/analysis/benchmark_layers.py [--batch-sizes 1 2]
        [--input-size 800 1216] [--repeats 20] [--device cpu] [--out FILE]
"""
import argparse

import torch
import torch.nn as nn
from mmcv.cnn.bricks.conv_ws import ConvWS2d

from mmbcn import BCN, WSConv2d
from mmbcn.benchmark.layers import (compare_layers, format_markdown,
                                    resnet50_fpn_conv_shapes,
                                    resnet50_fpn_norm_shapes)
from mmbcn.reports.tables import emit_report


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--input-size', type=int, nargs=2, default=[800, 1216],
                        metavar=('H', 'W'),
                        help='detector input size the feature maps follow')
    parser.add_argument('--repeats', type=int, default=20,
                        help='interleaved timing rounds per case')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--only', choices=['norm', 'conv'], default=None)
    parser.add_argument('--out', help='also write the tables to this file')
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error(f'--repeats {args.repeats}: use at least 3')
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    sections = []
    header = (f'device={device} threads={torch.get_num_threads()} '
              f'torch={torch.__version__} repeats={args.repeats} '
              f'input={args.input_size[0]}x{args.input_size[1]}')
    print(header, flush=True)
    for n in args.batch_sizes:
        if args.only in (None, 'norm'):
            rows = []
            for name, c, h, w in resnet50_fpn_norm_shapes(*args.input_size):
                layers = {
                    'GroupNorm(32)': nn.GroupNorm(32, c),
                    'BCN micro': BCN(c, 32),
                    'BCN large': BCN(c, 32, mode='large'),
                    'BatchNorm2d': nn.BatchNorm2d(c),
                }
                layers = {k: v.to(device) for k, v in layers.items()}
                x = torch.randn(n, c, h, w, device=device)
                rows += compare_layers('norm', f'{name} N={n}', layers, x,
                                       args.repeats)
                print(format_markdown(rows[-4:]).split('\n', 2)[2],
                      flush=True)
            sections.append(f'### Norm layers, batch {n} (ratios to '
                            f'GroupNorm)\n\n' + format_markdown(rows))
        if args.only in (None, 'conv'):
            rows = []
            for name, cin, cout, k, h, w in resnet50_fpn_conv_shapes(
                    *args.input_size):
                kw = dict(padding=k // 2, bias=False)
                layers = {
                    'nn.Conv2d': nn.Conv2d(cin, cout, k, **kw),
                    'WSConv2d': WSConv2d(cin, cout, k, **kw),
                    'WSConv2d std': WSConv2d(cin, cout, k, eps_mode='std',
                                             **kw),
                    'mmcv ConvWS': ConvWS2d(cin, cout, k, **kw),
                }
                layers = {k_: v.to(device) for k_, v in layers.items()}
                x = torch.randn(n, cin, h, w, device=device)
                rows += compare_layers('conv', f'{name} N={n}', layers, x,
                                       args.repeats)
                print(format_markdown(rows[-4:]).split('\n', 2)[2],
                      flush=True)
            sections.append(f'### Convolutions, batch {n} (ratios to '
                            f'nn.Conv2d)\n\n' + format_markdown(rows))
    text = header + '\n\n' + '\n\n'.join(sections)
    emit_report(text, args.out)


if __name__ == '__main__':
    main()
