"""Fold WS and BCN of a trained mmdet / mmseg checkpoint into standard
layers (conv + GroupNorm) and save the folded model::

    python tools/deployment/fold_norm.py CONFIG CHECKPOINT OUT
        [--norm SCHEME] [--cfg-options k=v ...] [--verify-shape H W]
        [--no-verify] [--tolerance 1e-3]

Writes ``OUT`` and the config of the folded network (plain convs, GN) next
to it as ``OUT`` with a ``.py`` suffix. When that config rebuilds the folded
model exactly (e.g. ``gn-ws``: only WS folded), ``OUT`` is an mmengine
checkpoint for it; when BCN was folded, the convs gained biases that mmdet /
mmseg configs cannot express, and ``OUT`` holds the whole module
(``torch.load(OUT, weights_only=False)['model']``, or
``mmbcn.deploy.load_folded(OUT)``). See :mod:`mmbcn.deploy.checkpoint`.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

from mmbcn.apis import build_model, load_config
from mmbcn.deploy import fold_norm, save_folded
from mmbcn.deploy.checkpoint import TOLERANCE, folded_format, output_errors
from mmbcn.schemes import scheme_names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fold WS / BCN into conv + GroupNorm and save the '
        'folded model with its config')
    parser.add_argument('config', help='mmdet / mmseg config file')
    parser.add_argument('checkpoint', help='checkpoint trained with it')
    parser.add_argument('out', help='output checkpoint (config dump: same '
                        'name with .py)')
    parser.add_argument('--norm', choices=scheme_names(),
                        help="normalization scheme of the checkpoint "
                        "(overrides the config's norm_scheme)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--verify-shape', type=int, nargs=2,
                        default=[256, 256], metavar=('H', 'W'),
                        help='compare folded and original outputs on a '
                        'random input of this size (default: 256 256)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the output comparison')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE,
                        help='largest output difference accepted, relative '
                        'to the largest output magnitude (default: '
                        f'{TOLERANCE:g}; float32 rounding alone reaches '
                        '~1.5e-4 in an untrained ResNet-50)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    fmt = folded_format(args.checkpoint)
    if fmt is not None:
        print(f'error: {args.checkpoint} is already folded (written by '
              f'fold_norm.py, format {fmt!r}); fold_norm.py takes the '
              'unfolded checkpoint trained with CONFIG and folds it itself',
              file=sys.stderr)
        return 1
    cfg = load_config(args.config, norm=args.norm,
                      cfg_options=args.cfg_options)
    model = build_model(cfg, args.checkpoint)
    folded = fold_norm(model)
    if not args.no_verify:
        inputs = torch.randn(1, 3, *args.verify_shape)
        error, relative = output_errors(model, folded, inputs)
        print(f'max |folded - original| = {error:.2e} ({relative:.2e} '
              'relative to the largest output) on a '
              f'{args.verify_shape[0]}x{args.verify_shape[1]} input')
        if relative > args.tolerance:
            print(f'error: above the tolerance {args.tolerance:g}',
                  file=sys.stderr)
            return 1
    info = save_folded(folded, cfg, args.out)
    print(f"saved {info['checkpoint']} (format: {info['format']}) and "
          f"{info['config']}\n{info['reason']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
