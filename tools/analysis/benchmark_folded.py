"""Inference time of folded BCN + WS models against plain conv + GroupNorm.

For each network the same config is built three ways: ``bcn-ws`` folded
(:func:`mmbcn.deploy.fold_norm`), ``gn`` (plain convs, GroupNorm with the
same groups: the baseline) and, unless ``--no-unfolded``, ``bcn-ws`` as
trained. The tensor path is timed (a detector's backbone + neck, a
segmentor's decode-head logits) in interleaved rounds in one process, the
order reversed every other round (baseline, folded, unfolded, then
unfolded, folded, baseline) so that no model always runs right after
another. The ratio is the median of the per-round ratios to the baseline,
with the range of their middle half (its width shows how noisy the machine
was). Weights are random (time only)::

    python tools/analysis/benchmark_folded.py [--models r50-fpn deeplabv3]
        [--input-size 384 384] [--batch 1] [--repeats 10] [--threads N]
        [--out FILE]

On a machine other jobs share, use ``--threads 1``: OpenMP threads that
wait on a descheduled sibling make multi-threaded timings erratic.
"""
import argparse
import os.path as osp
import statistics
import tempfile

import torch

from mmbcn.apis import build_model, load_config
from mmbcn.benchmark.timing import ratio_stats, time_rounds
from mmbcn.deploy import fold_norm, output_errors
from mmbcn.deploy.onnx import tensor_forward
from mmbcn.reports.tables import emit_report

MODELS = {
    # Mask R-CNN's ResNet-50 + FPN (the tensor path of the detector)
    'r50-fpn': "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
               'model = dict(backbone=dict(init_cfg=None))\n',
    # DeepLabV3 ResNetV1c-50-D8 + ASPP (auxiliary head unused in inference)
    'deeplabv3': "_base_ = 'mmseg::deeplabv3/"
                 "deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py'\n"
                 'model = dict(pretrained=None)\n',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', choices=list(MODELS),
                        default=list(MODELS))
    parser.add_argument('--input-size', type=int, nargs=2, default=[384, 384],
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--num-groups', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=10,
                        help='interleaved timing rounds')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--no-unfolded', action='store_true',
                        help='do not time the unfolded bcn-ws model')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error(f'--repeats {args.repeats}: use at least 3')
    return args


def build(name: str, scheme: dict) -> torch.nn.Module:
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, f'{name}.py')
        with open(path, 'w') as f:
            f.write(MODELS[name])
        cfg = load_config(path, norm=scheme, work_dir=tmp)
    torch.manual_seed(0)
    return build_model(cfg)


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    norm = dict(num_groups=args.num_groups)
    lines = [f'device=cpu threads={torch.get_num_threads()} '
             f'torch={torch.__version__} repeats={args.repeats} '
             f'input={args.batch}x3x{args.input_size[0]}x'
             f'{args.input_size[1]}', '',
             '| model | gn ms | folded ms | folded / gn (IQR) | unfolded ms '
             '| unfolded / gn |', '|---|---|---|---|---|---|']
    print('\n'.join(lines), flush=True)
    for name in args.models:
        bcn_ws = build(name, dict(name='bcn-ws', norm=norm))
        runs = {'gn': build(name, dict(name='gn', norm=norm)),
                'folded': fold_norm(bcn_ws)}
        if not args.no_unfolded:
            runs['unfolded'] = bcn_ws
        x = torch.randn(args.batch, 3, *args.input_size)
        abs_error, rel_error = output_errors(bcn_ws, runs['folded'], x)
        fns = []
        for model in runs.values():
            def run(_round, f=tensor_forward(model)):
                with torch.inference_mode():
                    f(x)
            fns.append(run)
        times = dict(zip(runs, time_rounds(fns, args.repeats, warmup=2)))
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ratio = {k: ratio_stats(v, times['gn'])[0] for k, v in times.items()}
        _, q1, q3 = ratio_stats(times['folded'], times['gn'])
        unfolded = (f"{ms['unfolded']:.1f} | {ratio['unfolded']:.3f}"
                    if 'unfolded' in ms else '- | -')
        lines.append(f"| {name} | {ms['gn']:.1f} | {ms['folded']:.1f} | "
                     f"{ratio['folded']:.3f} ({q1:.3f}-{q3:.3f}) | "
                     f'{unfolded} |  (folded vs bcn-ws: max error '
                     f'{abs_error:.1e}, relative {rel_error:.1e})')
        print(lines[-1], flush=True)
    emit_report('\n'.join(lines), args.out)


if __name__ == '__main__':
    main()
