"""Elimination-singularity report: per-layer tables and plots of runs.

    python tools/analysis/singularity.py CHECKPOINT_OR_WORK_DIR [...]
        [--out-dir DIR] [--labels LABEL ...] [--config CONFIG]
        [--norm SCHEME] [--cfg-options KEY=VALUE ...] [--num-batches 4]
        [--mode train|eval] [--split train|val|test] [--no-plots]

A WORK_DIR (or a folder holding several) is read from the
``singularity.jsonl`` that SingularityHook wrote during training; a
CHECKPOINT (.pth) is measured now, with its config (``--config``, else the
config dumped in its work dir, else the one stored in the checkpoint).
Writes singularity.md, singularity_layers.csv, singularity_curves.csv and,
per task, singularity_<task>.png (model-level dead / near-elimination
fraction over iterations) and singularity_layers_<task>.png (per layer,
final measurement). Statistics: mmbcn/models/diagnostics.py.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmbcn.reports.singularity import (MODES, assign_labels,
                                               find_sources,
                                               measure_checkpoint,
                                               read_work_dir, to_markdown,
                                               write_report)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('paths', nargs='+', metavar='CHECKPOINT_OR_WORK_DIR')
    parser.add_argument('--out-dir', default=None,
                        help='where the report and plots go (default: the '
                        'first path, or the first checkpoint\'s folder)')
    parser.add_argument('--labels', nargs='+', default=None,
                        help='one legend label per run, in the order found '
                        '(default: the scheme)')
    parser.add_argument('--config', default=None,
                        help='config of the checkpoint(s)')
    parser.add_argument('--norm', default=None,
                        help='scheme the checkpoint was trained with '
                        '(as tools/train.py --norm)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py')
    parser.add_argument('--num-batches', type=int, default=4,
                        help='batches a checkpoint is measured on')
    parser.add_argument('--mode', choices=MODES, default='train',
                        help='train: the training-step forward (what the '
                        'hook logs; buffers restored); eval: the prediction '
                        'forward with running statistics')
    parser.add_argument('--split', choices=('train', 'val', 'test'),
                        default=None, help='dataloader of a checkpoint\'s '
                        'measurement (default: train for --mode train, val '
                        'for --mode eval)')
    parser.add_argument('--no-plots', action='store_true')
    return parser.parse_args()


def main():
    args = parse_args()
    runs = []
    try:
        sources = find_sources(args.paths)
        for kind, path in sources:
            if kind == 'work_dir':
                print(f'reading {osp.join(path, "singularity.jsonl")}')
                runs.append(read_work_dir(path))
            else:
                runs.append(measure_checkpoint(
                    path, args.config, args.norm, args.cfg_options,
                    args.num_batches, args.split, args.mode))
        assign_labels(runs, args.labels)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'singularity.py: error: {e}')
    first = args.paths[0]
    out_dir = args.out_dir or (first if osp.isdir(first)
                               else osp.dirname(osp.abspath(first)))
    paths = write_report(runs, out_dir, plots=not args.no_plots)
    print(to_markdown(runs).split('\n## ')[0].rstrip())
    for path in paths:
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
