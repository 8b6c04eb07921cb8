"""The whole-model benchmark's pieces: configs, inputs, timing, arguments
(the benchmark itself is a script, not a timed test)."""
import os.path as osp
import sys

import pytest
import torch

from mmbcn.benchmark.model import (finite_loss, format_model_table,
                                   model_config_path, random_det_batch,
                                   random_seg_batch, summarize)
from mmbcn.benchmark.timing import time_rounds
from repo import REPO

ROOT = REPO
CONFIGS = osp.join(ROOT, 'configs')


@pytest.mark.parametrize('model', ['mask-rcnn', 'deeplabv3'])
@pytest.mark.parametrize('scheme', ['gn', 'gn-ws', 'bcn-ws'])
def test_config_paths_exist(model, scheme):
    path = model_config_path(CONFIGS, model, scheme)
    assert osp.isfile(path) and scheme in osp.basename(path)


def test_config_path_errors():
    with pytest.raises(ValueError, match="model 'resnet'"):
        model_config_path(CONFIGS, 'resnet', 'gn')
    with pytest.raises(ValueError, match="scheme 'evonorm-s0'"):
        model_config_path(CONFIGS, 'mask-rcnn', 'evonorm-s0')
    with pytest.raises(FileNotFoundError, match='no config'):
        model_config_path('/nonexistent', 'mask-rcnn', 'gn')


def test_random_batches_are_valid_and_repeatable():
    det = random_det_batch(2, 64, num_objects=3)
    assert [tuple(i.shape) for i in det['inputs']] == [(3, 64, 64)] * 2
    inst = det['data_samples'][0].gt_instances
    boxes = inst.bboxes.tensor
    assert boxes.shape == (3, 4)
    assert bool(((boxes[:, 2:] > boxes[:, :2]) & (boxes >= 0).all(1, True)
                 & (boxes <= 64).all(1, True)).all())
    assert inst.masks.masks.shape == (3, 64, 64) and inst.masks.masks.any()
    again = random_det_batch(2, 64, num_objects=3)
    assert torch.equal(again['inputs'][1], det['inputs'][1])
    seg = random_seg_batch(1, 64)
    label = seg['data_samples'][0].gt_sem_seg.data
    assert label.shape == (1, 64, 64) and int(label.max()) > 0


def test_summary_table_and_finite_check():
    rows = summarize('m', 1, 64, ['a', 'b'], [[1., 2., 3.], [2., 4., 6.]])
    assert rows[1].ratio == 2.0 and rows[0].median_ms == 2000.
    table = format_model_table(rows, 'a')
    assert '| m | 1 | 64x64 | b | 4000 | 2.000 (2.000-2.000) |' in table

    def bad(seed):
        return float('nan')

    with pytest.raises(FloatingPointError, match='non-finite loss'):
        time_rounds([bad], repeats=3, warmup=0, check=finite_loss)


@pytest.mark.parametrize('args, words', [
    (['--repeats', '2'], 'at least 3'),
    (['--size', '500'], 'multiple of 32'),
    (['--size', '0'], '--size must be >= 1'),
    (['--batch-sizes', 'x'], 'batch must be an integer'),
    (['--schemes', 'gn', 'gn'], 'repeated scheme'),
    (['--models', 'yolo'], 'invalid choice'),
    (['--device', 'banana'], 'not a device'),
    (['--device', 'meta'], "use 'cpu' or 'cuda[:index]'"),
] + ([] if torch.cuda.is_available() else [
    (['--device', 'cuda'], 'CUDA is not available here')]))
def test_tool_bad_arguments(args, words, capsys):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
    try:
        import benchmark_model
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit):
        benchmark_model.parse_args(args)
    assert words in capsys.readouterr().err
