"""Runs of one scheme at several seeds: one row per scheme, each metric as
mean ± std (n), and a bar chart with the std as error bars."""
import os.path as osp
import statistics
import sys

import pytest

from mmbcn.reports.collect import (plot_runs, scheme_rows, summarize,
                                   to_markdown)
from mmbcn.reports.results import RunResult
from repo import REPO


def run(task, scheme, seed, metrics, sec=1.0):
    config = {'det': 'mask-rcnn_r18_fpn_x_1xb2-300i_shapes',
              'seg': 'deeplabv3_r18-d8_x_1xb2-1000i_shapes'}[task]
    return RunResult(
        work_dir=f'/runs/{config}_{scheme}_seed{seed}', config=config,
        task=task, model='Mask R-CNN' if task == 'det' else 'DeepLabV3',
        backbone='R-18', scheme=scheme, imgs_per_gpu=2, gpus=1,
        max_iters=4, schedule='4i', seed=seed, last_iter=4, metrics=metrics,
        sec_per_iter=sec, train_curve=[(1, 2.0), (4, 1.0)],
        val_curve=[(4, next(iter(metrics.values())))])


def runs():
    out = []
    for seed, (box, mask, miou) in enumerate([(0.1, 0.2, 30.0),
                                              (0.2, 0.3, 33.0),
                                              (0.3, 0.1, 36.0)]):
        out.append(run('det', 'gn', seed, {'bbox mAP': box,
                                           'segm mAP': mask}))
        out.append(run('seg', 'gn', seed, {'mIoU': miou}))
    out.append(run('det', 'frn', 0, {'bbox mAP': 0.05, 'segm mAP': 0.04}))
    out.append(run('seg', 'frn', 0, {'mIoU': 20.0}))
    out.append(run('seg', 'frn', 1, {'mIoU': 22.0}))
    return out


def test_one_row_per_scheme_mean_std_n():
    rows = scheme_rows(summarize(runs()))
    assert [r['scheme'] for r in rows] == ['gn', 'frn']
    gn, frn = rows
    assert gn['bbox mAP'] == pytest.approx(0.2)
    assert gn['bbox mAP std'] == pytest.approx(0.1)
    assert gn['mIoU'] == pytest.approx(33.0)
    assert gn['mIoU std'] == pytest.approx(statistics.stdev([30, 33, 36]))
    assert gn['n'] == '3'
    assert frn['n'] == 'det 1, seg 2' and frn['bbox mAP std'] is None
    table = to_markdown(rows, ('scheme', 'bbox mAP', 'segm mAP', 'mIoU',
                               'n'))
    lines = table.splitlines()
    assert '| gn | 0.200 ± 0.100 | 0.200 ± 0.100 | 33.00 ± 3.00 | 3 |' in \
        [' '.join(line.split()) for line in lines], table
    frn_line = [line for line in lines if line.startswith('| frn')][0]
    assert '0.050 |' in frn_line and '21.00 ± 1.41' in frn_line


def test_unfinished_runs_are_not_rows():
    stopped = run('det', 'bn', 0, {'bbox mAP': 0.1, 'segm mAP': 0.1})
    stopped.last_iter = 2
    rows = scheme_rows(summarize(runs() + [stopped]))
    assert 'bn' not in [r['scheme'] for r in rows]


def test_demo_rows_use_the_seed_summary():
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import experiments
    finally:
        sys.path.pop(0)
    rows = experiments.demo_rows(runs())
    assert rows == scheme_rows(summarize(runs()))
    assert 'n' in experiments.DEMO_COLUMNS
    planned = experiments.plan_runs(
        [osp.join(REPO, 'configs/shapes/'
                  'mask-rcnn_r18_fpn_frn-all_1xb2-300i_shapes.py')],
        seeds=[0, 1, 2], work_root='/tmp/demo')
    assert [p.seed for p in planned] == [0, 1, 2]
    assert experiments.train_command(planned[2])[-2:] == [
        '--cfg-options', 'randomness.seed=2']


def test_bar_chart_with_error_bars(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    seen = {}
    original = plt.Axes.bar

    def spy(self, x, height, *args, **kwargs):
        seen.setdefault(self.get_title() or 'det', []).append(
            (list(height), list(kwargs.get('yerr'))))
        return original(self, x, height, *args, **kwargs)

    plt.Axes.bar = spy
    try:
        written = plot_runs(runs(), summarize(runs()), str(tmp_path))
    finally:
        plt.Axes.bar = original
    assert osp.join(str(tmp_path), 'final_det.png') in written
    assert osp.join(str(tmp_path), 'final_seg.png') in written
    heights, errors = seen['det'][0]
    assert heights == pytest.approx([0.2, 0.05])
    assert errors == pytest.approx([0.1, 0])


def test_compare_matrix_has_the_swin_rows_and_cell_options():
    """make compare also trains the small Swin with LayerNorm and with
    PRepBN (labels ln / prepbn); a planned run's extra --cfg-options follow
    its seed (what tools/reproduce.py gives each fine-tuning run)."""
    from mmengine.config import Config
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import experiments
    finally:
        sys.path.pop(0)
    labels = [Config.fromfile(osp.join(REPO, c)).norm_scheme
              for c in experiments.COMPARE_SWIN_CONFIGS]
    assert labels == ['ln', 'prepbn']
    run_ = experiments.plan_runs(
        [osp.join(REPO, experiments.COMPARE_SWIN_CONFIGS[1])], seeds=[1],
        work_root='/tmp/demo')[0]
    run_.cfg_options = ('model.backbone.init_cfg.checkpoint=x.pth', )
    assert experiments.train_command(run_)[-3:] == [
        '--cfg-options', 'randomness.seed=1',
        'model.backbone.init_cfg.checkpoint=x.pth']
