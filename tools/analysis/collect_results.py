"""Collect finished runs into a markdown table, a CSV and plots.

    python tools/analysis/collect_results.py WORK_DIR [WORK_DIR ...]
        [--out-dir DIR] [--baseline gn] [--sort-by scheme|bbox mAP|mIoU|...]
        [--descending] [--no-plots] [--singularity]

Each WORK_DIR is a run's work dir or a folder holding several (searched
recursively). Runs of one config differing only in the seed are grouped
as mean ± std (n shown). ``--singularity`` adds the final model-level dead
and near-elimination fractions from each run's singularity.jsonl
(SingularityHook; per layer: tools/analysis/singularity.py).
"""
import argparse
import os
import os.path as osp
import sys

from mmbcn.reports.collect import (collect, plot_runs, sort_rows,
                                    summarize, to_markdown, write_csv)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--out-dir', default=None,
                        help='where results.md/.csv and plots go '
                        '(default: the first WORK_DIR)')
    parser.add_argument('--baseline', default=None,
                        help='scheme to compare against (adds a Δ column)')
    parser.add_argument('--sort-by', default='scheme')
    parser.add_argument('--descending', action='store_true')
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--singularity', action='store_true',
                        help='add the final dead / near-elimination '
                        'fractions of singularity.jsonl (mean ± std)')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        runs = collect(args.work_dirs)
        rows = sort_rows(summarize(runs, args.baseline, args.singularity),
                         args.sort_by, args.descending)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'collect_results.py: error: {e}')
    out_dir = args.out_dir or args.work_dirs[0]
    os.makedirs(out_dir, exist_ok=True)
    table = to_markdown(rows)
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    write_csv(rows, osp.join(out_dir, 'results.csv'))
    print(table)
    print(f'\nwrote {osp.join(out_dir, "results.md")} and results.csv')
    if not args.no_plots:
        for path in plot_runs(runs, rows, out_dir):
            print(f'wrote {path}')


if __name__ == '__main__':
    main()
