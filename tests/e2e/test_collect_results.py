"""tools/analysis/collect_results.py on work dirs of real (tiny) mmengine
runs: grouping of seeds, mean ± std, baseline differences, sorting, CSV and
markdown, and the singularity column.

Each run is a real mmengine Runner (TinyNet of tiny_runner.py with BCN)
with a validation loop whose metric is fixed per run, so the expected
table is known; its work dir holds the config file the runner dumped
(naming task, scheme and seed), the launch folder with
``vis_data/scalars.json`` and the SingularityHook's ``singularity.jsonl``.
"""
import csv
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.runner import Runner

from mmbcn.reports.collect import (collect, sort_rows, summarize,
                                   to_markdown)
from mmbcn.reports.results import MAIN_METRIC, read_run
from tiny_runner import TinyNet
from repo import REPO

TOOL = osp.join(REPO, 'tools', 'analysis', 'collect_results.py')

# scheme -> [(seed, mIoU, BCN groups forced dead)]
MATRIX = {
    'gn': [(0, 30.0, 1), (1, 32.0, 2), (2, 34.0, 0)],
    'bcn-ws': [(0, 35.0, 0), (1, 38.0, 0)],
    'bn': [(0, 18.0, 3)],
}


class FixedMetric(BaseMetric):
    """Reports ``mIoU = value`` (the key mmseg's IoUMetric logs)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict:
        return {'mIoU': self.value}


CONFIG = """default_scope = 'mmseg'
norm_scheme = {scheme!r}
model = dict(type='EncoderDecoder', backbone=dict(type='ResNetV1c', depth=18),
             decode_head=dict(type='ASPPHead'))
train_dataloader = dict(batch_size=2)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=8, val_interval=8)
randomness = dict(seed={seed})
"""


def tiny_run(root, scheme: str, seed: int, miou: float, dead_groups: int):
    """Train TinyNet 8 iterations, validate once; ``dead_groups`` of its 4
    BCN groups start with bias -50 (never active, so they stay dead)."""
    config = root / 'configs' / f'seed{seed}' / f'tiny_{scheme}_1xb2-8i.py'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(scheme=scheme, seed=seed))
    torch.manual_seed(seed)
    data = [dict(inputs=torch.randn(3, 8, 8)) for _ in range(16)]
    loader = dict(dataset=data, batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    work_dir = root / 'runs' / f'tiny_{scheme}_1xb2-8i_seed{seed}'
    model = TinyNet()
    with torch.no_grad():
        model.norm.bias[:dead_groups] = -50.0
    runner = Runner(
        model=model, work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=loader, val_cfg=dict(),
        val_evaluator=Evaluator([FixedMetric(miou)]),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=8, val_interval=8),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=None),
        custom_hooks=[dict(type='SingularityHook', interval=2)],
        randomness=dict(seed=seed), cfg=Config.fromfile(str(config)),
        experiment_name=f'tiny_{scheme}_seed{seed}')
    runner.train()
    return str(work_dir)


@pytest.fixture(scope='module')
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp('matrix')
    dirs = {(scheme, seed): tiny_run(root, scheme, seed, miou, dead)
            for scheme, members in MATRIX.items()
            for seed, miou, dead in members}
    return dict(root=root / 'runs', dirs=dirs)


def final_singularity(work_dir: str):
    """(dead, near) of the hook's last measurement, read independently."""
    with open(osp.join(work_dir, 'singularity.jsonl')) as f:
        records = [json.loads(line) for line in f]
    last = max(r['iter'] for r in records)
    (record, ) = [r for r in records if r['iter'] == last]  # one layer
    return last, record['dead_fraction'], record['near_fraction']


def test_seeds_group_as_mean_std_with_baseline(matrix):
    runs = collect([str(matrix['root'])])
    assert len(runs) == 6
    assert {(r.scheme, r.seed) for r in runs} == set(matrix['dirs'])
    rows = {r['scheme']: r for r in summarize(runs, baseline='gn')}
    assert set(rows) == {'gn', 'bcn-ws', 'bn'}
    for scheme, members in MATRIX.items():
        row = rows[scheme]
        values = [m[1] for m in members]
        assert row['task'] == 'seg' and row['model'] == 'ASPPHead'
        assert row['backbone'] == 'ResNetV1c18'
        assert row['schedule'] == '8i' and row['imgs/GPU x GPUs'] == '2 x 1'
        assert row['n'] == len(members)
        assert row['mIoU'] == pytest.approx(statistics.fmean(values))
        if len(values) > 1:
            assert row['mIoU std'] == pytest.approx(statistics.stdev(values))
        else:
            assert row['mIoU std'] is None
        assert row['Δ vs gn'] == pytest.approx(row['mIoU'] - 32.0)
        assert sorted(row['work dir'].split(', ')) == sorted(
            matrix['dirs'][(scheme, seed)] for seed, *_ in members)
        assert row['sec/iter'] is not None  # timings of the real runs
    # without the option, no singularity columns (existing behaviour)
    assert 'dead fraction' not in rows['gn']
    ordered = sort_rows(list(rows.values()), 'mIoU', descending=True)
    assert [r['scheme'] for r in ordered] == ['bcn-ws', 'gn', 'bn']


def test_singularity_column_is_the_final_measurement(matrix):
    runs = collect([str(matrix['root'])])
    rows = {r['scheme']: r for r in summarize(runs, singularity=True)}
    for scheme, members in MATRIX.items():
        finals = [final_singularity(matrix['dirs'][(scheme, seed)])
                  for seed, *_ in members]
        assert {it for it, _, _ in finals} == {8}  # iterations 1, 2, 4, 6, 8
        # the forced-dead groups (4 of 16 channels each) stay dead
        assert [d for _, d, _ in finals] == [m[2] / 4 for m in members]
        dead = [d for _, d, _ in finals]
        near = [n for _, _, n in finals]
        assert rows[scheme]['dead fraction'] == pytest.approx(
            statistics.fmean(dead))
        assert rows[scheme]['near fraction'] == pytest.approx(
            statistics.fmean(near))
        if len(members) > 1:
            assert rows[scheme]['dead fraction std'] == pytest.approx(
                statistics.stdev(dead))
    assert rows['gn']['dead fraction'] == pytest.approx(0.25)
    assert rows['bn']['dead fraction'] == pytest.approx(0.75)


def test_tool_writes_markdown_csv_and_plots(matrix, tmp_path):
    out = tmp_path / 'out'
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(
        [sys.executable, TOOL, str(matrix['root']), '--out-dir', str(out),
         '--baseline', 'gn', '--sort-by', 'mIoU', '--descending',
         '--singularity'], capture_output=True, text=True, env=env,
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (out / 'results.md').read_text()
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    assert header.index('mIoU') < header.index('Δ vs gn') < \
        header.index('dead fraction') < header.index('near fraction') < \
        header.index('n')
    body = [[c.strip() for c in line.strip('|').split('|')]
            for line in lines[2:]]
    assert [r[header.index('scheme')] for r in body] == ['bcn-ws', 'gn', 'bn']
    gn = body[1]
    assert gn[header.index('mIoU')] == '32.00 ± 2.00'
    assert gn[header.index('Δ vs gn')] == '0.000'
    assert gn[header.index('dead fraction')] == '0.250 ± 0.250'
    assert gn[header.index('n')] == '3'
    assert body[2][header.index('mIoU')] == '18.00'  # n = 1: no ± shown
    assert body[0][header.index('Δ vs gn')] == '4.500'
    with open(out / 'results.csv', newline='') as f:
        records = list(csv.DictReader(f))
    assert [r['scheme'] for r in records] == ['bcn-ws', 'gn', 'bn']
    assert float(records[0]['mIoU']) == pytest.approx(36.5)
    assert float(records[0]['mIoU std']) == pytest.approx(
        statistics.stdev([35.0, 38.0]))
    assert float(records[1]['dead fraction']) == pytest.approx(0.25)
    assert records[2]['mIoU std'] == ''
    assert (out / 'curves_seg.png').stat().st_size > 0
    assert (out / 'final_seg.png').stat().st_size > 0


def test_tool_reports_a_malformed_singularity_log(matrix, tmp_path):
    root = tmp_path / 'runs'
    src = matrix['dirs'][('bn', 0)]
    dst = root / osp.basename(src)
    shutil.copytree(src, dst)
    log = dst / 'singularity.jsonl'
    lines = log.read_text().splitlines()
    lines[1] = lines[1][:25]  # a line cut off
    log.write_text('\n'.join(lines) + '\n')
    proc = subprocess.run(
        [sys.executable, TOOL, str(root), '--singularity', '--no-plots'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode != 0
    assert f'{log}:2: not a JSON line' in proc.stderr
    assert 'Traceback' not in proc.stderr


# --------------------------------------------------------------------------
# the metric named is the metric plotted; bad or unfinished runs are flagged
# --------------------------------------------------------------------------
def copy_run(matrix, root, scheme='gn', seed=0, name=None):
    src = matrix['dirs'][(scheme, seed)]
    dst = root / (name or osp.basename(src))
    shutil.copytree(src, dst)
    return dst


def scalars_of(work_dir):
    (launch, ) = [p for p in work_dir.iterdir() if p.is_dir()]
    return launch / 'vis_data' / 'scalars.json'


def rewrite(path, edit):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text(''.join(json.dumps(r) + '\n' for r in edit(records)))


@pytest.mark.parametrize('task', ['seg', 'det'])
def test_validation_curve_is_the_main_metric(matrix, tmp_path, task):
    """mmseg logs aAcc first, and a det record may list segm first: the
    curve is still mIoU / bbox mAP, the metric its plot names."""
    work_dir = copy_run(matrix, tmp_path)
    first, main = dict(seg=('aAcc', 'mIoU'),
                       det=('coco/segm_mAP', 'coco/bbox_mAP'))[task]
    if task == 'det':
        dump = next(work_dir.glob('*.py'))
        dump.write_text(dump.read_text().replace("'mmseg'", "'mmdet'"))

    def val_first(records):
        for r in records:
            if 'mIoU' in r:
                value = r.pop('mIoU')
                r.clear()
                r.update({first: 91.0, main: value, 'step': 8})
            yield r
    rewrite(scalars_of(work_dir), val_first)
    run = read_run(str(work_dir))
    label = {'seg': 'mIoU', 'det': 'bbox mAP'}[task]
    assert MAIN_METRIC[run.task] == label
    assert run.val_curve == [(8, 30.0)]
    assert run.metrics[label] == 30.0


def test_bad_run_dirs_are_skipped_with_a_warning(matrix, tmp_path):
    root = tmp_path / 'runs'
    good = copy_run(matrix, root, 'gn', 0)
    bad_cfg = copy_run(matrix, root, 'gn', 1)
    bad_scalars = copy_run(matrix, root, 'gn', 2)
    dump = next(bad_cfg.glob('*.py'))
    dump.write_text('model = dict(\n')
    scalars_of(bad_scalars).write_bytes(os.urandom(2048))
    stringly = copy_run(matrix, root, 'bn', 0)  # a string loss
    rewrite(scalars_of(stringly), lambda rs: [
        dict(r, loss='n/a') if r.get('iter') == 3 else r for r in rs])
    warnings = []
    runs = collect([str(root)], warn=warnings.append)
    assert sorted(r.work_dir for r in runs) == sorted([str(good),
                                                       str(stringly)])
    assert len(warnings) == 2
    assert any(w.startswith(f'skipped {bad_cfg}: {dump}: not a readable '
                            'config dump') for w in warnings)
    assert f'skipped {bad_scalars}: {scalars_of(bad_scalars)}: not a text ' \
        'file of JSON records' in warnings
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, TOOL, str(root), '--out-dir', str(out)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines()
                if ln.startswith('warning: skipped')]) == 2
    assert (out / 'curves_seg.png').stat().st_size > 0


def test_status_and_last_iteration(matrix, tmp_path):
    root = tmp_path / 'runs'
    finished = copy_run(matrix, root, 'gn', 0)
    killed = copy_run(matrix, root, 'gn', 1)
    rewrite(scalars_of(killed),
            lambda rs: [r for r in rs if r.get('iter', 99) <= 3])
    nan = copy_run(matrix, root, 'gn', 2)
    rewrite(scalars_of(nan), lambda rs: [
        dict(r, loss=float('nan')) if r.get('iter', 0) >= 5 else r
        for r in rs])
    mixed = copy_run(matrix, root, 'bn', 0)
    (launch, ) = [p for p in mixed.iterdir() if p.is_dir()]
    other = mixed / '29990101_000000'
    shutil.copytree(launch, other)
    config = other / 'vis_data' / 'config.py'
    config.write_text(config.read_text().replace("norm_scheme = 'bn'",
                                                 "norm_scheme = 'gn'"))
    runs = {r.work_dir: r for r in collect([str(root)])}
    assert runs[str(finished)].status == 'finished'
    assert runs[str(killed)].status == 'stopped at 3'
    assert runs[str(killed)].last_iter == 3
    assert runs[str(nan)].status == 'non-finite'
    assert runs[str(mixed)].status == 'mixed (bn, gn)'
    rows = summarize(list(runs.values()), baseline='gn')
    by_status = {r['status']: r for r in rows}
    assert set(by_status) == {'finished', 'stopped at 3', 'non-finite',
                              'mixed (bn, gn)'}
    assert by_status['finished']['n'] == 1  # not averaged with the others
    assert by_status['stopped at 3']['last iter'] == '3'
    assert by_status['finished']['last iter'] == '8'
    # only the finished gn row is the baseline
    assert by_status['non-finite']['Δ vs gn'] == pytest.approx(34.0 - 30.0)
    table = to_markdown(rows)
    assert '| status | last iter |' in table.splitlines()[0]
