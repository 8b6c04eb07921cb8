"""Export the folded tensor path of an mmdet / mmseg checkpoint to ONNX::

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx
        [--norm SCHEME] [--cfg-options k=v ...] [--shape H W]
        [--opset 17] [--dynamic-batch] [--tolerance 1e-3]

Folds WS / BCN (:func:`mmbcn.deploy.fold_norm`), exports the tensor path (a
detector's backbone + neck features, ``extract_feat``; a segmentor's
decode-head logits, ``_forward``), checks the file with
``onnx.checker.check_model`` and, if onnxruntime is installed, compares its
outputs with torch's. Needs ``pip install -r requirements/deploy.txt``.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

from mmbcn.apis import build_model, load_config
from mmbcn.deploy import fold_norm
from mmbcn.deploy.checkpoint import TOLERANCE, folded_format
from mmbcn.deploy.onnx import DEFAULT_OPSET, export_onnx, onnxruntime_errors
from mmbcn.schemes import scheme_names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fold and export a model to ONNX, checked against torch')
    parser.add_argument('config', help='mmdet / mmseg config file')
    parser.add_argument('checkpoint', help='checkpoint trained with it')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--norm', choices=scheme_names(),
                        help="normalization scheme of the checkpoint "
                        "(overrides the config's norm_scheme)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'), help='input size (static)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='make the batch dimension dynamic')
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
              f'fold_norm.py, format {fmt!r}); export_onnx.py takes the '
              'unfolded checkpoint trained with CONFIG and folds it itself',
              file=sys.stderr)
        return 1
    cfg = load_config(args.config, norm=args.norm,
                      cfg_options=args.cfg_options)
    model = fold_norm(build_model(cfg, args.checkpoint))
    inputs = torch.randn(1, 3, *args.shape)
    names = export_onnx(model, inputs, args.out, args.opset,
                        dynamic_batch=args.dynamic_batch)
    print(f'exported {args.out} ({len(names)} outputs), '
          'onnx.checker: passed')
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('onnxruntime is not installed: outputs not compared')
        return 0
    error, relative = onnxruntime_errors(model, args.out, inputs)
    print(f'max |onnxruntime - torch| = {error:.2e} ({relative:.2e} '
          'relative to the largest output)')
    if relative > args.tolerance:
        print(f'error: above the tolerance {args.tolerance:g}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
