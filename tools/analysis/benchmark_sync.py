"""Compare BCN's sync modes (none, 'layer', 'deferred') in 2-process CPU
(gloo) training of the small shapes Mask R-CNN with BCN + WS: collectives
per iteration, median s/iter, and the effect of 'deferred''s one-step lag
(estimates and loss against 'layer'); prints a markdown table.

    python tools/analysis/benchmark_sync.py [--iters 20] [--warmup 3]
        [--threads 1] [--nproc 2] [--modes none layer deferred]
        [--config CONFIG] [--data-root DIR] [--out FILE]

Without --data-root a small shapes dataset is generated in a temporary
directory. The work is done by :mod:`mmbcn.benchmark.sync`.
"""
import argparse
import os.path as osp
import shlex
import sys
import tempfile

import torch

from mmbcn.reports.tables import emit_report
from mmbcn.benchmark.sync import (SYNC_MODES, benchmark_sync,
                                           format_table, summarize)
from mmbcn.datasets import generate_shapes

REPO = osp.abspath(osp.join(osp.dirname(__file__), '../..'))
CONFIG = osp.join(REPO, 'configs', 'shapes',
                  'mask-rcnn_r18_fpn_bcn-ws-all_1xb2-300i_shapes.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=20,
                        help='timed iterations per mode (after warm-up)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='iterations per mode before timing')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads per process')
    parser.add_argument('--nproc', type=int, default=2,
                        help='processes (ranks)')
    parser.add_argument('--modes', nargs='+', choices=SYNC_MODES,
                        default=list(SYNC_MODES))
    parser.add_argument('--config', default=CONFIG,
                        help='a shapes config with BCN (default: Mask R-CNN '
                        'R-18-FPN bcn-ws)')
    parser.add_argument('--norm', default='bcn-ws', choices=['bcn', 'bcn-ws'])
    parser.add_argument('--data-root', help='shapes data (default: generate '
                        '16 training images in a temporary directory)')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args()
    for name, low in (('iters', 3), ('warmup', 0), ('threads', 1),
                      ('nproc', 2)):
        if getattr(args, name) < low:
            parser.error(f'--{name} {getattr(args, name)}: use at least '
                         f'{low}')
    if not osp.isfile(args.config):
        parser.error(f'--config {args.config}: no such file')
    if args.data_root and not osp.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root}: no such directory')
    return args


def main():
    args = parse_args()
    command = 'python ' + ' '.join(
        shlex.quote(a) for a in [osp.relpath(__file__, REPO)] + sys.argv[1:])
    header = (f'`{command}` — {args.nproc} CPU processes (gloo) x '
              f'{args.threads} thread(s), torch {torch.__version__}, '
              f'{args.warmup} warm-up + {args.iters} timed iterations per '
              'mode')
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root
        if data_root is None:
            data_root = osp.join(tmp, 'shapes')
            generate_shapes(data_root, num_train=16, num_val=1,
                            progress=False)
        results = benchmark_sync(
            args.config, data_root, modes=args.modes, norm=args.norm,
            iters=args.iters, warmup=args.warmup, nproc=args.nproc,
            threads=args.threads)
    text = format_table(summarize(results), header)
    emit_report(text, args.out)


if __name__ == '__main__':
    main()
