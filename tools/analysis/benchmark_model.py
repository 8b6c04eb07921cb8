"""Time whole training iterations (forward + losses + backward + optimizer
step) of Mask R-CNN R-50-FPN (and DeepLabV3 R-50-D8) built from the project's
configs with different normalization schemes; prints a markdown table with
the median iteration time of each scheme and its ratio to the first.

    python tools/analysis/benchmark_model.py [--models mask-rcnn deeplabv3]
        [--schemes gn gn-ws bcn-ws] [--batch-sizes 1 2] [--size 512]
        [--repeats 5] [--warmup 1] [--threads 1] [--device cuda]
        [--out FILE]

The schemes run in alternating rounds in one process (see
:mod:`mmbcn.benchmark.model`). On a machine other jobs share, use
``--threads 1``.
"""
import argparse
import os.path as osp
import sys

import torch

from mmbcn.reports.tables import emit_report
from mmbcn.benchmark.model import (MODEL_CONFIGS, MODEL_SCHEMES,
                                            benchmark_model,
                                            format_model_table)

CONFIGS_DIR = osp.abspath(osp.join(osp.dirname(__file__), '../../configs'))


def positive(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{name} must be an integer, got {text!r}')
        if value < 1:
            raise argparse.ArgumentTypeError(f'{name} must be >= 1, got '
                                             f'{value}')
        return value
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', '--model', nargs='+',
                        choices=list(MODEL_CONFIGS), default=['mask-rcnn'])
    parser.add_argument('--schemes', nargs='+', choices=MODEL_SCHEMES,
                        default=['gn', 'gn-ws', 'bcn-ws'],
                        help='the first one is the baseline of the ratios')
    parser.add_argument('--batch-sizes', nargs='+', type=positive('batch'),
                        default=[1, 2])
    parser.add_argument('--size', type=positive('--size'), default=512,
                        help='square input size (default: 512)')
    parser.add_argument('--repeats', type=positive('--repeats'), default=5,
                        help='timed rounds (each runs every scheme once)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed rounds first (default: 1)')
    parser.add_argument('--threads', type=positive('--threads'),
                        default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' (default) or a CUDA device such as "
                        "'cuda' or 'cuda:1'")
    parser.add_argument('--configs-dir', default=CONFIGS_DIR,
                        help='where the project configs are')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error(f'--repeats {args.repeats}: use at least 3 (medians)')
    if args.warmup < 0:
        parser.error(f'--warmup {args.warmup}: must be >= 0')
    if args.size % 32:
        parser.error(f'--size {args.size}: use a multiple of 32 (the '
                     "detector's padding divisor)")
    if len(set(args.schemes)) != len(args.schemes):
        parser.error(f'--schemes {" ".join(args.schemes)}: repeated scheme')
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device}: not a device; use 'cpu' or "
                     "'cuda[:index]'")
    if device.type not in ('cpu', 'cuda'):
        parser.error(f"--device {args.device}: use 'cpu' or 'cuda[:index]'")
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available here')
    if not osp.isdir(args.configs_dir):
        parser.error(f'--configs-dir {args.configs_dir}: not a directory')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = 'python tools/analysis/benchmark_model.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    header = (f'`{command}`\n\ndevice={args.device} '
              f'threads={torch.get_num_threads()} '
              f'torch={torch.__version__} repeats={args.repeats} '
              f'warmup={args.warmup}')
    print(header, flush=True)
    rows = []
    for model in args.models:
        for batch in args.batch_sizes:
            rows += benchmark_model(
                args.configs_dir, model, args.schemes, batch, args.size,
                args.repeats, args.warmup, device=args.device,
                log=lambda s: print(s, flush=True))
            print(format_model_table(rows[-len(args.schemes):],
                                     args.schemes[0]).split('\n', 2)[2],
                  flush=True)
    text = header + '\n\n' + format_model_table(rows, args.schemes[0])
    emit_report(text, args.out)


if __name__ == '__main__':
    main()
