"""Generate the built-in synthetic shapes dataset.

Example::

    python tools/dataset_converters/make_shapes.py --out-dir data/shapes

See :mod:`mmbcn.datasets.shapes` for the layout that is written.
"""
import argparse
import sys

from mmbcn.datasets.shapes import generate_shapes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shapes dataset (COCO instances '
        '+ semantic masks).')
    parser.add_argument(
        'out_dir_pos', nargs='?', metavar='OUT_DIR', default=None,
        help='output directory (same as --out-dir)')
    parser.add_argument(
        '--out-dir', default=None, help='output directory '
        '(default: data/shapes)')
    parser.add_argument('--num-train', type=int, default=400,
                        help='number of training images (default: 400)')
    parser.add_argument('--num-val', type=int, default=100,
                        help='number of validation images (default: 100)')
    parser.add_argument('--img-size', type=int, default=128,
                        help='side of the square images in px (default: 128)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--no-progress', action='store_true',
                        help='do not show a progress bar')
    args = parser.parse_args(argv)
    if args.out_dir_pos and args.out_dir and args.out_dir_pos != args.out_dir:
        parser.error('give the output directory either positionally or '
                     'with --out-dir, not both')
    args.out_dir = args.out_dir or args.out_dir_pos or 'data/shapes'
    return args


def main(argv=None):
    args = parse_args(argv)
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
