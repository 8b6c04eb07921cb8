"""The papers' protocol in miniature on built-in data (``make reproduce``):
pretrain each scheme's backbones on the built-in classification task, fine-
tune the shapes Mask R-CNN and DeepLabV3 from them at 2 images per process,
at several seeds, and print one table next to the same schemes trained from
scratch.

    python tools/reproduce.py [--schemes bn gn gn-ws bcn bcn-ws]
        [--seeds 0 1 2] [--jobs 2] [--work-root work_dirs/reproduce]
        [--scratch-root work_dirs/compare] [--scratch]
        [--variant {long,lr-half,lr-double}]

For every seed and scheme:

1. ``configs/pretrain/resnet18_<scheme>_1xb32-300i_shapes-cls.py``
   pretrains the ResNet-18 of both models at a large batch (1 process x 32
   images); for ``bn`` also at the micro batch
   (``resnet18_bn_1xb32-mb1-300i_shapes-cls.py``: BN statistics of single
   images);
2. ``configs/shapes/finetune/`` fine-tunes the detector (100 iterations)
   and the segmenter (200 iterations) from that seed's checkpoints
   (``model.backbone.init_cfg.checkpoint``);
3. the from-scratch column reads the runs of ``make compare SEEDS="..."``
   (``tools/demo.py --seeds``, in ``--scratch-root``); ``--scratch`` trains
   the missing ones too (about 4 minutes each on 2 cores).

Finished runs are kept and skipped when the command is run again. The table
goes to ``<work-root>/reproduce.md``, the bar charts to
``<work-root>/protocol_{det,seg}.png``.

``--variant`` fine-tunes the same checkpoints once more with one setting
changed for every scheme alike (``VARIANTS``: a 3x longer schedule, half or
twice the lr), in ``<work-root>/<variant>/`` with its own table and charts,
and no from-scratch columns: it tests the explanations of the table. Once
a variant has finished runs, ``<work-root>/settings_{det,seg}.png`` show
every setting fine-tuned so far side by side (``plot_settings``).
"""
import argparse
import glob
import os
import os.path as osp
import sys
import time

from mmbcn.datasets import generate_shapes
from mmbcn.datasets.shapes_cls import generate_shapes_cls
from mmbcn.reports.protocol import (Cell, plot_protocol, plot_settings,
                                    protocol_rows)
from mmbcn.reports.collect import to_markdown
from mmbcn.reports.results import read_run
from mmbcn.schemes import SCHEMES

from experiments import (PlannedRun, is_finished, plan_runs, run_matrix,
                         shapes_configs)

PRETRAIN_SCHEMES = ('bn', 'gn', 'gn-ws', 'bcn', 'bcn-ws')
#: the pretraining batches: (row label, config batch tag, fine-tune tag)
LARGE = ('32 images', '1xb32-300i', 'cls')
MICRO = ('1 image (micro)', '1xb32-mb1-300i', 'cls-mb1')
ARCH = 'resnet18'  # the backbone of both the Mask R-CNN and the DeepLabV3


def schedule(iters: int):
    """--cfg-options giving a fine-tuning config ``iters`` iterations: its
    warm-up (param_scheduler[0]) stays, the poly decay ends at ``iters``."""
    return (f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.1.end={iters}')


#: Fine-tuning variants, every scheme alike: name -> (what it changes,
#: Mask R-CNN options, DeepLabV3 options); the base lr of both is 0.02.
#: The order is that of the settings chart.
VARIANTS = {
    'lr-half': ('half the lr: 0.01', ('optim_wrapper.optimizer.lr=0.01', ),
                ('optim_wrapper.optimizer.lr=0.01', )),
    'lr-double': ('twice the lr: 0.04', ('optim_wrapper.optimizer.lr=0.04', ),
                  ('optim_wrapper.optimizer.lr=0.04', )),
    'long': ('3x the schedule: Mask R-CNN 300, DeepLabV3 600 iterations',
             schedule(300), schedule(600)),
}
#: the chart labels of the table's own fine-tuning and of each variant
#: (lr, then schedule: the order of the settings chart)
SETTING_LABELS = {'lr-half': 'lr 0.01', None: 'lr 0.02 (the table)',
                  'lr-double': 'lr 0.04',
                  'long': 'lr 0.02, 3x the iterations'}
COLUMNS = ('scheme', 'pretraining', 'pretrain top-1', 'bbox mAP',
           'segm mAP', 'mIoU', 'scratch bbox mAP', 'scratch segm mAP',
           'scratch mIoU', 'n')


def one(pattern: str) -> str:
    found = sorted(glob.glob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(f'expected one config matching {pattern}, '
                                f'found {len(found)}')
    return found[0]


def cells_of(schemes):
    """(scheme, (label, batch tag, fine-tune tag)) of every table row."""
    cells = [(s, LARGE) for s in schemes]
    if 'bn' in schemes:
        cells.insert(schemes.index('bn') + 1, ('bn', MICRO))
    return cells


def pretrain_run(scheme, batch, seed, work_root) -> PlannedRun:
    config = one(f'configs/pretrain/{ARCH}_{scheme}_{batch}_shapes-cls.py')
    return plan_runs([config], seeds=[seed], work_root=work_root)[0]


def checkpoint_of(run: PlannedRun) -> str:
    """The last checkpoint mmengine saved in a finished run."""
    marker = osp.join(run.work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(f'{run.work_dir} has no last_checkpoint: the '
                                'pretraining did not finish')
    with open(marker) as f:
        return f.read().strip()


def finetune_runs(scheme, tags, seed, pretrained, work_root, variant=None):
    """The detector and segmenter fine-tuned from the ``pretrained`` run at
    ``seed`` (with ``VARIANTS[variant]``'s options, in
    ``<work_root>/<variant>``)."""
    det_tag = SCHEMES[scheme].det_tag
    det = one(f'configs/shapes/finetune/mask-rcnn_r18-{tags[2]}_fpn_'
              f'{det_tag}_1xb2-*_shapes.py')
    seg = one(f'configs/shapes/finetune/deeplabv3_r18-{tags[2]}-d8_'
              f'{scheme}_1xb2-*_shapes.py')
    options = VARIANTS[variant][1:] if variant else ((), ())
    if variant:
        work_root = osp.join(work_root, variant)
    runs = []
    for config, extra in zip((det, seg), options):
        run = plan_runs([config], seeds=[seed], work_root=work_root)[0]
        run.cfg_options = (
            f'model.backbone.init_cfg.checkpoint='
            f'{checkpoint_of(pretrained)}', ) + tuple(extra)
        runs.append(run)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--schemes', nargs='+', default=list(PRETRAIN_SCHEMES),
                        choices=PRETRAIN_SCHEMES, metavar='SCHEME',
                        help='default and choices: ' +
                        ' '.join(PRETRAIN_SCHEMES))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        metavar='SEED', help='default: 0 1 2')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs trained at once (default 2, each with '
                        'OMP_NUM_THREADS = CPUs / jobs)')
    parser.add_argument('--work-root', default='work_dirs/reproduce')
    parser.add_argument('--scratch-root', default='work_dirs/compare',
                        help='where the from-scratch runs are (those of '
                        'make compare SEEDS=...; default work_dirs/compare)')
    parser.add_argument('--scratch', action='store_true',
                        help='train the missing from-scratch runs too')
    parser.add_argument('--variant', choices=sorted(VARIANTS),
                        help='fine-tune once more with one setting changed '
                        'for every scheme: ' + '; '.join(
                            f'{k}: {v[0]}' for k, v in VARIANTS.items()))
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f'--jobs {args.jobs}: give 1 or more')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds {args.seeds}: each seed once')
    start = time.time()
    if not osp.isfile('data/shapes/annotations/instances_val.json'):
        print('generating the shapes dataset in data/shapes ...')
        generate_shapes('data/shapes')
    if not osp.isdir('data/shapes_cls/val'):
        print('generating the classification task in data/shapes_cls ...')
        generate_shapes_cls('data/shapes_cls')
    cells = cells_of(list(args.schemes))
    try:
        pretrain = {(s, t[1], seed): pretrain_run(s, t[1], seed,
                                                  args.work_root)
                    for s, t in cells for seed in args.seeds}
        print(f'1/3 pretraining {len(pretrain)} backbones')
        run_matrix(list(pretrain.values()), jobs=args.jobs)
        finetune = {}
        for s, t in cells:
            for seed in args.seeds:
                finetune[(s, t[1], seed)] = finetune_runs(
                    s, t, seed, pretrain[(s, t[1], seed)], args.work_root,
                    args.variant)
        print(f'2/3 fine-tuning {2 * len(finetune)} models')
        run_matrix([r for pair in finetune.values() for r in pair],
                   jobs=args.jobs)
        scratch = {s: plan_runs(shapes_configs(s), seeds=args.seeds,
                                work_root=args.scratch_root)
                   for s in args.schemes}
        missing = [r for runs in scratch.values() for r in runs
                   if not is_finished(r)]
        if args.variant:
            pass  # a variant's table has no from-scratch columns
        elif args.scratch and missing:
            print(f'3/3 training {len(missing)} missing from-scratch runs')
            run_matrix(missing, jobs=args.jobs)
        elif missing:
            print(f'3/3 {len(missing)} from-scratch runs are not in '
                  f'{args.scratch_root} (run make compare SEEDS="'
                  f'{" ".join(map(str, args.seeds))}" or add --scratch); '
                  'their cells stay empty')
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f'reproduce.py: error: {e}')

    def finished(runs):
        return [read_run(r.work_dir) for r in runs if is_finished(r)]

    table_cells = []
    for s, t in cells:
        cell = Cell(scheme=s, pretraining=t[0])
        cell.pretrain = finished(pretrain[(s, t[1], seed)]
                                 for seed in args.seeds)
        cell.det = finished(finetune[(s, t[1], seed)][0]
                            for seed in args.seeds)
        cell.seg = finished(finetune[(s, t[1], seed)][1]
                            for seed in args.seeds)
        if t is LARGE and not args.variant:
            cell.scratch_det = finished(scratch[s][:len(args.seeds)])
            cell.scratch_seg = finished(scratch[s][len(args.seeds):])
        table_cells.append(cell)
    rows = protocol_rows(table_cells)
    columns = COLUMNS
    out = args.work_root
    if args.variant:
        columns = tuple(c for c in COLUMNS if not c.startswith('scratch'))
        out = osp.join(args.work_root, args.variant)
        print(f'\nfine-tuned with {VARIANTS[args.variant][0]}')
    table = to_markdown(rows, columns)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'reproduce.md'), 'w') as f:
        f.write(table + '\n')
    plots = plot_protocol(rows, out)
    # every variant fine-tuned so far beside the table's own fine-tuning
    settings = []
    for variant in SETTING_LABELS:
        runs = finetune if variant == args.variant else {
            (s, t[1], seed): finetune_runs(
                s, t, seed, pretrain[(s, t[1], seed)], args.work_root,
                variant)
            for s, t in cells for seed in args.seeds}
        setting_cells = [Cell(scheme=s, pretraining=t[0],
                              det=finished(runs[(s, t[1], seed)][0]
                                           for seed in args.seeds),
                              seg=finished(runs[(s, t[1], seed)][1]
                                           for seed in args.seeds))
                         for s, t in cells]
        if any(c.det or c.seg for c in setting_cells):
            settings.append((SETTING_LABELS[variant],
                             protocol_rows(setting_cells)))
    if len(settings) > 1:
        plots += plot_settings(settings, args.work_root)
    print('\n' + table)
    print(f'\n(total {time.time() - start:.0f} s; table in '
          f'{out}/reproduce.md; plots: {", ".join(plots)})')


if __name__ == '__main__':
    main()
