"""Train an mmdet detector or an mmseg segmentor, with a norm scheme.

The arguments of mmdet's ``tools/train.py`` plus ``--norm``::

    python tools/train.py CONFIG [--norm bcn-ws] [--work-dir DIR] [--amp]
        [--auto-scale-lr] [--resume [CHECKPOINT]] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

The work is done by :mod:`mmbcn.apis` (``load_config`` and ``train``).
"""
import argparse
import os

from mmengine.config import DictAction

from mmbcn.apis import LAUNCHERS, load_config, train
from mmbcn.apis.runner import ConfigBuildError, amp_device_error
from mmbcn.apis.work_dir_lock import WorkDirLockedError
from mmbcn.compat import CheckpointError, CPUDistributedError
from mmbcn.engine.hooks import SchemeMismatchError
from mmbcn.schemes import scheme_names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a detector (mmdet) or a segmentor (mmseg)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--norm',
        choices=scheme_names(),
        help='normalization scheme applied to the model (overrides the '
        "config's norm_scheme); the default work dir becomes "
        'work_dirs/<config>_<norm>')
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
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
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
        cfg = load_config(
            args.config,
            norm=args.norm,
            cfg_options=args.cfg_options,
            work_dir=args.work_dir,
            amp=args.amp,
            auto_scale_lr=args.auto_scale_lr,
            resume=args.resume,
            launcher=args.launcher)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if amp_device_error(cfg):
        parser.error(amp_device_error(cfg))
    if args.allow_scheme_mismatch:
        cfg.allow_scheme_mismatch = True
    try:
        train(cfg)
    except (CPUDistributedError, FileNotFoundError, CheckpointError,
            SchemeMismatchError, WorkDirLockedError, ConfigBuildError,
            FloatingPointError) as error:
        # missing data, an unreadable / refused / other-scheme checkpoint, a
        # work dir in use, a layer argument the model refuses, a run gone
        # non-finite: the message says what
        parser.exit(1, f'{parser.prog}: error: {error}\n')


if __name__ == '__main__':
    main()
