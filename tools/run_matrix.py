"""Train a matrix of config x norm scheme x seed, skipping finished runs,
then collect the results into a table, a CSV and plots.

    python tools/run_matrix.py CONFIG [CONFIG ...] [--norms bn gn-ws ...]
        [--seeds 0 1 2] [--work-root work_dirs/matrix] [--gpus N] [--jobs N]
        [--baseline gn] [--rerun] [-- EXTRA train.py ARGS]

Without --norms each config trains with its own scheme. With --gpus N > 1
each run goes through tools/dist_train.sh. Each run's output is in
<work dir>/train_stdout.log.
"""
import argparse
import os
import os.path as osp
import sys

from mmbcn.reports.collect import (plot_runs, sort_rows, summarize,
                                    to_markdown, write_csv)
from mmbcn.schemes import scheme_names

from experiments import plan_runs, run_matrix


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--norms', nargs='+', choices=scheme_names(),
                        default=[], metavar='SCHEME',
                        help=f'schemes ({", ".join(scheme_names())})')
    parser.add_argument('--seeds', nargs='+', type=int, default=[])
    parser.add_argument('--work-root', default='work_dirs/matrix')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (dist_train.sh when > 1)')
    parser.add_argument('--baseline', default=None)
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at once (CPU: each with '
                        'OMP_NUM_THREADS = CPUs / jobs; default 1)')
    parser.add_argument('--rerun', action='store_true',
                        help='train again even if a run finished')
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if '--' in argv:
        i = argv.index('--')
        argv, extra = argv[:i], argv[i + 1:]
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs {args.jobs}: give 1 or more')
    args.extra = extra
    return args


def main():
    args = parse_args()
    try:
        runs = plan_runs(args.configs, args.norms, args.seeds,
                         args.work_root)
        results = run_matrix(runs, args.gpus, args.extra,
                             skip_finished=not args.rerun, jobs=args.jobs)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f'run_matrix.py: error: {e}')
    rows = sort_rows(summarize(results, args.baseline))
    os.makedirs(args.work_root, exist_ok=True)
    table = to_markdown(rows)
    with open(osp.join(args.work_root, 'results.md'), 'w') as f:
        f.write(table + '\n')
    write_csv(rows, osp.join(args.work_root, 'results.csv'))
    print('\n' + table)
    for path in plot_runs(results, rows, args.work_root):
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
