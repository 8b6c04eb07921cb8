"""Test (and evaluate) a checkpoint of an mmdet or mmseg config.

The arguments of mmdet's ``tools/test.py`` plus ``--norm`` (test a checkpoint
trained with ``--norm X`` with ``--norm X``)::

    python tools/test.py CONFIG CHECKPOINT [--norm bcn-ws] [--work-dir DIR]
        [--out FILE] [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--out``: mmdet: a .pkl file of the predictions; mmseg: a directory of the
predicted label maps. The work is done by :mod:`mmbcn.apis`.
"""
import argparse
import os

from mmengine.config import DictAction

from mmbcn import apis
from mmbcn.compat import CheckpointError, CPUDistributedError
from mmbcn.schemes import scheme_names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and eval) a detector (mmdet) or a segmentor '
        '(mmseg)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions for offline evaluation: a pickle file '
        '(mmdet) or a directory of label maps (mmseg)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'mmdet: saved to work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--norm',
        choices=scheme_names(),
        help='normalization scheme applied to the model (overrides the '
        "config's norm_scheme): the one the checkpoint was trained with")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=apis.LAUNCHERS,
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--allow-scheme-mismatch',
        action='store_true',
        help='load a checkpoint that records another norm scheme than the '
        "model's (refused otherwise: its results would be wrong)")
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older) to the script.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        cfg = apis.load_config(
            args.config,
            norm=args.norm,
            cfg_options=args.cfg_options,
            work_dir=args.work_dir,
            launcher=args.launcher)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    try:
        return apis.test(
            cfg,
            args.checkpoint,
            out=args.out,
            show=args.show,
            show_dir=args.show_dir,
            wait_time=args.wait_time,
            tta=args.tta,
            allow_scheme_mismatch=args.allow_scheme_mismatch)
    except (FileNotFoundError, ValueError, CPUDistributedError,
            CheckpointError) as error:
        # a missing, unreadable, refused or other-scheme checkpoint, an
        # --out / --tta / --show-dir the config cannot take, a distributed
        # run this machine cannot set up
        parser.exit(1, f'{parser.prog}: error: {error}\n')


if __name__ == '__main__':
    main()
