"""Generate the built-in synthetic shapes dataset.

Example::

    python tools/dataset_converters/make_shapes.py --out-dir data/shapes
    python tools/dataset_converters/make_shapes.py --task cls

See :mod:`mmbcn.datasets.shapes` (``--task det-seg``, the default) and
:mod:`mmbcn.datasets.shapes_cls` (``--task cls``: the classification task
the backbones are pretrained on) for the layouts that are written.
"""
import argparse
import sys

from mmbcn.datasets.shapes import generate_shapes
from mmbcn.datasets.shapes_cls import generate_shapes_cls

#: task -> (default output dir, train images, val images, image size)
DEFAULTS = {'det-seg': ('data/shapes', 400, 100, 128),
            'cls': ('data/shapes_cls', 2000, 500, 64)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shapes dataset (COCO instances '
        '+ semantic masks).')
    parser.add_argument(
        '--task', choices=sorted(DEFAULTS), default='det-seg',
        help='det-seg: COCO instances + semantic masks (default); cls: '
        'the class of the largest shape per image, one folder per class')
    parser.add_argument(
        'out_dir_pos', nargs='?', metavar='OUT_DIR', default=None,
        help='output directory (same as --out-dir)')
    parser.add_argument(
        '--out-dir', default=None, help='output directory '
        '(default: data/shapes, cls: data/shapes_cls)')
    parser.add_argument('--num-train', type=int, default=None,
                        help='number of training images (default: 400, '
                        'cls: 2000)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='number of validation images (default: 100, '
                        'cls: 500)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='side of the square images in px (default: '
                        '128, cls: 64)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--no-progress', action='store_true',
                        help='do not show a progress bar')
    args = parser.parse_args(argv)
    if args.out_dir_pos and args.out_dir and args.out_dir_pos != args.out_dir:
        parser.error('give the output directory either positionally or '
                     'with --out-dir, not both')
    out_dir, num_train, num_val, img_size = DEFAULTS[args.task]
    args.out_dir = args.out_dir or args.out_dir_pos or out_dir
    for name, default in (('num_train', num_train), ('num_val', num_val),
                          ('img_size', img_size)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.task == 'cls':
        try:
            summary = generate_shapes_cls(
                args.out_dir, num_train=args.num_train, num_val=args.num_val,
                img_size=args.img_size, seed=args.seed,
                progress=not args.no_progress)
        except ValueError as e:
            sys.exit(f'error: {e}')
        parts = [f'{split}: {sum(c.values())} images' for split, c in
                 summary.items()]
        print(f'Wrote the shapes classification task to {args.out_dir} '
              f'({args.img_size}px, seed {args.seed}, classes '
              f'{", ".join(summary["train"])}) -- ' + '; '.join(parts))
        return
    try:
        summary = generate_shapes(
            args.out_dir, num_train=args.num_train, num_val=args.num_val,
            img_size=args.img_size, seed=args.seed,
            progress=not args.no_progress)
    except ValueError as e:
        sys.exit(f'error: {e}')
    parts = [f"{split}: {s['images']} images / {s['instances']} instances"
             for split, s in summary.items()]
    print(f'Wrote shapes dataset to {args.out_dir} '
          f'({args.img_size}px, seed {args.seed}) -- ' + '; '.join(parts))


if __name__ == '__main__':
    main()
