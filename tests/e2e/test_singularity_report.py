"""tools/analysis/singularity.py and mmbcn.reports.singularity:
reports from a real training work dir (the SingularityHook's log of a
2-iteration DeepLabV3 run on tiny shapes data), measurements of real
checkpoints, and errors for bad input."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from matplotlib.image import imread
from mmengine.runner import load_checkpoint

from mmbcn import apis
from mmbcn.reports.singularity import (assign_labels, find_sources,
                                               layer_key, measure_checkpoint,
                                               measure_model, read_log,
                                               read_work_dir)
from test_tools import SEG_CONFIG, cli_options, data_options
from tiny_runner import make_runner
from repo import REPO

TOOL = osp.join(REPO, 'tools', 'analysis', 'singularity.py')


def run_tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True, text=True, env=env,
                          timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def hook_records(work_dir):
    with open(osp.join(work_dir, 'singularity.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory, shapes_root):
    """DeepLabV3 bcn-ws (the shapes config, its SingularityHook measuring
    every iteration), 2 iterations in process; iter_2.pth."""
    work_dir = tmp_path_factory.mktemp('seg') / 'deeplabv3_bcn-ws'
    data = data_options(SEG_CONFIG, shapes_root, max_iters=2)
    options = dict(data, **{
        'custom_hooks': [dict(type='SingularityHook', interval=1)]})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        apis.train(apis.load_config(SEG_CONFIG, work_dir=work_dir,
                                    cfg_options=options))
    finally:
        torch.set_num_threads(threads)
    return dict(work_dir=work_dir, options=data)


# --------------------------------------------------------------------------
# work dirs
# --------------------------------------------------------------------------
def test_tool_reports_a_work_dir(seg_run, tmp_path):
    work_dir = seg_run['work_dir']
    out = tmp_path / 'report'
    code, output = run_tool(work_dir, '--out-dir', out)
    assert code == 0, output
    records = hook_records(work_dir)
    assert sorted({r['iter'] for r in records}) == [1, 2]
    final = [r for r in records if r['iter'] == 2]
    with open(out / 'singularity_layers.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    # one row per layer at the final measurement, values as logged
    assert [r['layer'] for r in rows] == [r['layer'] for r in final]
    for row, rec in zip(rows, final):
        assert row['run'] == 'bcn-ws' and row['task'] == 'seg'
        assert int(row['iter']) == 2
        assert int(row['channels']) == rec['channels']
        for key in ('dead_fraction', 'near_fraction', 'mean_distance',
                    'min_distance'):
            assert float(row[key]) == pytest.approx(rec[key])
    assert any('bcn' in r['layer'] for r in rows)
    with open(out / 'singularity_curves.csv', newline='') as f:
        curve = list(csv.DictReader(f))
    assert [int(r['iter']) for r in curve] == [1, 2]
    first = [r for r in records if r['iter'] == 1]
    total = sum(r['channels'] for r in first)
    assert float(curve[0]['dead_fraction']) == pytest.approx(
        sum(r['dead_fraction'] * r['channels'] for r in first) / total)
    report = (out / 'singularity.md').read_text()
    assert '## bcn-ws (seg, iter 2)' in report
    assert f"| {final[0]['layer']} | {final[0]['channels']} |" in report
    for name in ('singularity_seg.png', 'singularity_layers_seg.png'):
        image = imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 400, name
        assert f'wrote {out / name}' in output


def test_log_reading_keeps_the_later_record_of_a_resumed_run(seg_run,
                                                             tmp_path):
    log = tmp_path / 'singularity.jsonl'
    lines = (seg_run['work_dir'] / 'singularity.jsonl').read_text()
    again = json.loads(lines.splitlines()[0])  # iter 1, first layer
    again['dead_fraction'] = 0.5
    log.write_text(lines + '\n' + json.dumps(again) + '\n')
    measured = read_log(str(log))
    assert list(measured) == [1, 2]
    layers = {s.layer: s for s in measured[1]}
    assert len(layers) == len(measured[1]) == len(measured[2])
    assert layers[again['layer']].dead_fraction == 0.5


def test_labels_and_layer_alignment(seg_run):
    runs = [read_work_dir(str(seg_run['work_dir'])) for _ in range(2)]
    assign_labels(runs)  # same scheme twice: made unique
    assert runs[0].label == runs[1].label == 'bcn-ws (deeplabv3_bcn-ws)'
    assign_labels(runs, ['a', 'b'])
    assert [r.label for r in runs] == ['a', 'b']
    with pytest.raises(ValueError, match='1 labels for 2 runs'):
        assign_labels(runs, ['a'])
    assert layer_key('backbone.layer1.0.bcn2') == \
        layer_key('backbone.layer1.0.gn2') == 'backbone.layer1.0.norm2'
    assert layer_key('backbone.stem.1') == 'backbone.stem.1'


# --------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------
def test_tool_measures_a_checkpoint_with_the_work_dirs_config(seg_run,
                                                              tmp_path):
    checkpoint = seg_run['work_dir'] / 'iter_2.pth'
    before = checkpoint.read_bytes()
    out = tmp_path / 'ckpt'
    code, output = run_tool(checkpoint, '--out-dir', out, '--num-batches', 2,
                            *cli_options(seg_run['options']))
    assert code == 0, output
    assert 'measuring 2 train batches in train mode' in output
    with open(out / 'singularity_layers.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    final = [r for r in hook_records(seg_run['work_dir']) if r['iter'] == 2]
    # the same norm layers as the hook saw, measured at the checkpoint's iter
    assert [(r['layer'], int(r['channels'])) for r in rows] == \
        [(r['layer'], r['channels']) for r in final]
    assert {r['scheme'] for r in rows} == {'bcn-ws'}
    assert {int(r['iter']) for r in rows} == {2}
    assert all(0 <= float(r['dead_fraction']) <= 1 for r in rows)
    assert checkpoint.read_bytes() == before
    assert imread(out / 'singularity_layers_seg.png').shape[0] > 200


def test_train_mode_measurement_equals_the_hook(tmp_path):
    """The hook at iteration 3 measures the weights and BCN estimates of
    iter_2.pth on batch 3; measuring iter_2.pth on that batch in train mode
    gives the same numbers, and leaves the model as it was."""
    torch.manual_seed(1)
    data = [dict(inputs=torch.randn(3, 8, 8) + 0.5) for _ in range(16)]
    runner = make_runner(tmp_path / 'tiny', 4, data=data, custom_hooks=[
        dict(type='SingularityHook', interval=1)])
    runner.train()
    logged = [r for r in hook_records(tmp_path / 'tiny') if r['iter'] == 3]
    model = make_runner(tmp_path / 'fresh', 1, data=data).model
    load_checkpoint(model, str(tmp_path / 'tiny' / 'iter_2.pth'),
                    map_location='cpu')
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    batch = dict(inputs=torch.stack([data[4]['inputs'],
                                     data[5]['inputs']]))
    (stats, ) = measure_model(model.eval(), [batch], mode='train')
    assert stats.layer == logged[0]['layer'] == 'norm'
    for key in ('dead_fraction', 'near_fraction', 'mean_distance',
                'min_distance'):
        assert getattr(stats, key) == pytest.approx(logged[0][key],
                                                    rel=1e-5, abs=1e-6)
    assert not model.training  # mode restored
    for key, value in model.named_buffers():
        torch.testing.assert_close(value, buffers[key], rtol=0, atol=0)
    # statistics-free: the batches' order does not matter
    other = dict(inputs=torch.stack([data[0]['inputs'], data[9]['inputs']]))
    forward = measure_model(model, [batch, other])[0]
    backward = measure_model(model, [other, batch])[0]
    assert forward.mean_distance == backward.mean_distance
    assert forward.min_distance == backward.min_distance


def test_checkpoint_of_another_scheme_is_a_clear_error(seg_run, one_thread):
    with pytest.raises(ValueError) as error:
        measure_checkpoint(str(seg_run['work_dir'] / 'iter_2.pth'),
                           config=SEG_CONFIG, norm='gn',
                           cfg_options=seg_run['options'], echo=lambda m: 0)
    message = str(error.value)
    assert 'does not fit the model' in message and "scheme gn" in message
    assert 'missing backbone.' in message and 'unexpected backbone.' in message
    assert '--config (and --norm) it was trained with' in message


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_checkpoint_without_config_is_a_clear_error(tmp_path):
    path = tmp_path / 'loose' / 'weights.pth'
    path.parent.mkdir()
    torch.save(dict(state_dict=dict(w=torch.zeros(1))), path)
    with pytest.raises(ValueError) as error:
        measure_checkpoint(str(path), echo=lambda m: 0)
    message = str(error.value)
    assert f'checkpoint {path} has no resolvable config' in message
    assert 'pass --config CONFIG' in message
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='not a readable checkpoint'):
        measure_checkpoint(str(tmp_path / 'junk.pth'), echo=lambda m: 0)


def test_paths_that_are_neither_are_clear_errors(tmp_path, seg_run):
    (tmp_path / 'notes.txt').write_text('hello')
    (tmp_path / 'empty').mkdir()
    for path, says in ((tmp_path / 'notes.txt', 'is a file but not a '
                        'checkpoint'),
                       (tmp_path / 'empty', 'is neither a work dir with '
                        'singularity.jsonl'),
                       (tmp_path / 'missing', 'does not exist')):
        with pytest.raises(ValueError) as error:
            find_sources([str(path)])
        assert str(path) in str(error.value) and says in str(error.value)
        assert 'valid: a training work dir with singularity.jsonl' in str(
            error.value)
    # a work dir trained without the hook points at its checkpoints
    plain = tmp_path / 'plain'
    plain.mkdir()
    shutil.copy(seg_run['work_dir'] / 'iter_2.pth', plain)
    with pytest.raises(ValueError, match='it holds checkpoints: pass one'):
        find_sources([str(plain)])
    # a folder of work dirs: each one found
    runs = tmp_path / 'runs'
    shutil.copytree(seg_run['work_dir'], runs / 'a', ignore=shutil.
                    ignore_patterns('*.pth'))
    shutil.copytree(seg_run['work_dir'], runs / 'b', ignore=shutil.
                    ignore_patterns('*.pth'))
    assert find_sources([str(runs)]) == [('work_dir', str(runs / 'a')),
                                         ('work_dir', str(runs / 'b'))]


def test_tool_names_the_malformed_line(seg_run, tmp_path):
    work_dir = tmp_path / 'broken'
    shutil.copytree(seg_run['work_dir'], work_dir,
                    ignore=shutil.ignore_patterns('*.pth'))
    log = work_dir / 'singularity.jsonl'
    lines = log.read_text().splitlines()
    lines[2] = json.dumps({k: v for k, v in json.loads(lines[2]).items()
                           if k != 'channels'})
    lines[4] = lines[4][:30]
    log.write_text('\n'.join(lines) + '\n')
    code, output = run_tool(work_dir, '--no-plots')
    assert code != 0
    assert f'singularity.py: error: {log}:3: missing channels' in output
    assert 'Traceback' not in output
    with pytest.raises(ValueError, match=f'{log}:5: not a JSON line'):
        lines[2] = lines[1]
        log.write_text('\n'.join(lines) + '\n')
        read_log(str(log))
    code, output = run_tool(tmp_path / 'nothing-here')
    assert code != 0 and 'does not exist; valid:' in output
    assert 'Traceback' not in output
