"""The command line of the ImageNet WS ResNet converters
(:mod:`mmbcn.converters.resnet`), shared by ``bcn_ws_resnet_to_mmdet.py``
and ``gn_ws_resnet_to_mmdet.py``; run it directly to choose the source
(``--source auto|bcn-ws|gn-ws``)."""
import argparse
import sys
from typing import Optional, Sequence

from mmbcn.converters.resnet import (SOURCE_NAMES, SOURCES, LayoutError,
                                     config_hint, convert_resnet,
                                     save_converted)
from mmbcn.converters.ws import TARGET_EPS_MODES, WS_SEMANTICS


def main(argv: Optional[Sequence[str]] = None,
         source: Optional[str] = None) -> int:
    """Command line; ``source`` fixes the source (no ``--source``)."""
    what = SOURCE_NAMES.get(source, 'an ImageNet WS ResNet')
    parser = argparse.ArgumentParser(
        description=f'Convert {what} into an mmdet / mmseg ResNet checkpoint'
        ' (mmbcn WSConv2d + ' + {'bcn-ws': 'BCN', 'gn-ws': 'GN'}.get(
            source, 'BCN or GN') + '); fc.* is dropped.')
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='converted checkpoint to write')
    if source is None:
        parser.add_argument('--source', choices=('auto', ) + SOURCES,
                            default='auto', help='source layout')
    parser.add_argument(
        '--eps-mode', choices=TARGET_EPS_MODES, default='var',
        help="target WSConv2d eps_mode; 'var' (mmbcn's default) rescales "
        "the filters to reproduce the source's standardized weights, 'std' "
        "keeps mmcv ConvWS semantics (GN+WS weights unchanged)")
    parser.add_argument('--source-ws', choices=tuple(WS_SEMANTICS),
                        default=None,
                        help='WS semantics the source was trained with '
                        '(default: var-unbiased for bcn-ws, std for gn-ws)')
    parser.add_argument('--source-eps', type=float, default=1e-5)
    parser.add_argument('--eps', type=float, default=1e-5,
                        help='target WSConv2d eps')
    if source != 'gn-ws':
        parser.add_argument(
            '--update-rate', type=float, default=0.01,
            help='BCN update_rate buffer to store (bcn-ws); 0 leaves it out')
    if source != 'bcn-ws':
        parser.add_argument(
            '--num-groups', type=int, default=32,
            help='GN groups of the gn-ws source (for the config hint)')
    parser.add_argument('--prefix', default='',
                        help="key prefix, e.g. 'backbone.' for load_from")
    parser.add_argument('--trust-source', action='store_true',
                        help='unpickle the source without the weights-only '
                        'restriction (trusted files only)')
    args = parser.parse_args(argv)
    src_kind = source or args.source
    rate = getattr(args, 'update_rate', None)
    if src_kind == 'gn-ws':
        rate = None
    try:
        result = convert_resnet(
            args.src, source=src_kind, eps_mode=args.eps_mode,
            source_ws=args.source_ws, source_eps=args.source_eps,
            target_eps=args.eps, update_rate=rate or None,
            num_groups=getattr(args, 'num_groups', 32), prefix=args.prefix,
            trust=args.trust_source)
    except (LayoutError, ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    save_converted(result, args.dst)
    meta = result.meta
    print(f"{args.src} ({SOURCE_NAMES[meta['source']]}) -> {args.dst}: "
          f'{len(result.state_dict)} tensors')
    print(f'dropped {len(result.dropped)} keys: {result.dropped}')
    for note in meta['notes']:
        print(f'note: {note}')
    print(config_hint(meta, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
