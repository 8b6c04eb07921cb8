"""The demo: generate the built-in shapes data (if missing), train and
evaluate the small Mask R-CNN and DeepLabV3 under several normalization
schemes at 2 images per process, print one table.

    python tools/demo.py [--schemes bn gn gn-ws bcn-ws | --schemes all]
        [--seeds 0 1 2] [--work-root work_dirs/demo]

``--schemes all`` (``make compare``) adds bcn, sws, evonorm-b0,
evonorm-s0, frn, brn, mabn and cbn to the four demo schemes, and the small
Swin Mask R-CNN with LayerNorm and with PRepBN (rows ``ln`` / ``prepbn``).

The small configs read the data from data/shapes/ (the configs'
``data_root``).

With ``--seeds`` every scheme runs once per seed (``randomness.seed``), and
the table gives each metric as mean ± std over the seeds, with n; the
final-metric bar charts have the std as error bars. Without it, each config
runs with its own seed (0).

Finished runs are kept and skipped when the demo is run again.
"""
import argparse
import os
import os.path as osp
import sys
import time

from mmbcn.datasets import generate_shapes
from mmbcn.reports.collect import plot_runs, summarize, to_markdown
from mmbcn.schemes import scheme_names

from experiments import (COMPARE_SCHEMES, COMPARE_SWIN_CONFIGS, DEMO_COLUMNS,
                         DEMO_SCHEMES, demo_rows, plan_runs, run_matrix,
                         shapes_configs)

DATA_ROOT = 'data/shapes'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--schemes', nargs='+', default=list(DEMO_SCHEMES),
        choices=list(scheme_names()) + ['all'], metavar='SCHEME',
        help=f'default: {" ".join(DEMO_SCHEMES)}; all: '
        f'{" ".join(COMPARE_SCHEMES)}; any of: {", ".join(scheme_names())}')
    parser.add_argument(
        '--seeds', nargs='+', type=int, default=[], metavar='SEED',
        help='run every scheme at each seed; the table reports mean ± std '
        '(n) (default: one run, the configs\' seed)')
    parser.add_argument('--work-root', default='work_dirs/demo')
    args = parser.parse_args()
    extra_configs = []
    if 'all' in args.schemes:
        args.schemes = list(COMPARE_SCHEMES)
        extra_configs = list(COMPARE_SWIN_CONFIGS)
    start = time.time()
    if not osp.isfile(osp.join(DATA_ROOT, 'annotations',
                               'instances_val.json')):
        print(f'generating the shapes dataset in {DATA_ROOT} ...')
        generate_shapes(DATA_ROOT)
    try:
        configs = [c for s in args.schemes for c in shapes_configs(s)]
        configs += extra_configs
        runs = plan_runs(configs, seeds=args.seeds,
                         work_root=args.work_root)
        results = run_matrix(runs)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f'demo.py: error: {e}')
    table = to_markdown(demo_rows(results), DEMO_COLUMNS)
    os.makedirs(args.work_root, exist_ok=True)
    with open(osp.join(args.work_root, 'demo.md'), 'w') as f:
        f.write(table + '\n')
    plots = plot_runs(results, summarize(results), args.work_root)
    print('\n' + table)
    print(f'\n(total {time.time() - start:.0f} s; table in '
          f'{args.work_root}/demo.md; plots: {", ".join(plots)})')


if __name__ == '__main__':
    main()
