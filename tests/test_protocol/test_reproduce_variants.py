"""tools/reproduce.py --variant: the same checkpoints fine-tuned once more
with one setting changed for every scheme alike; the --cfg-options it
passes give the configs what the variant says (parsed as tools/train.py
parses them, merged by mmbcn.apis.load_config)."""
import argparse
import os.path as osp
import sys

import pytest
from mmengine.config import DictAction

from mmbcn import apis
from repo import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
try:
    import reproduce
finally:
    sys.path.pop(0)


def loaded(run):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *run.cfg_options])
    return apis.load_config(osp.join(REPO, run.config),
                            cfg_options=options.cfg_options,
                            work_dir=run.work_dir)


@pytest.fixture
def pretrained(tmp_path):
    run = reproduce.PlannedRun('c.py', None, 0, str(tmp_path / 'pre'))
    (tmp_path / 'pre').mkdir()
    (tmp_path / 'pre' / 'last_checkpoint').write_text('pre/iter_300.pth')
    return run


@pytest.mark.parametrize('variant', [None, *reproduce.VARIANTS])
def test_variant_options_reach_the_configs(variant, pretrained, tmp_path,
                                           monkeypatch):
    monkeypatch.chdir(REPO)
    det, seg = reproduce.finetune_runs(
        'gn-ws', reproduce.LARGE, 1, pretrained, str(tmp_path / 'root'),
        variant)
    expected_root = tmp_path / 'root' / (variant or '')
    for run, iters in ((det, 100), (seg, 200)):
        assert osp.dirname(run.work_dir) == str(expected_root).rstrip('/')
        cfg = loaded(run)
        assert cfg.model.backbone.init_cfg.checkpoint == 'pre/iter_300.pth'
        if variant == 'long':
            iters *= 3
        assert cfg.train_cfg.max_iters == iters
        assert cfg.train_cfg.val_interval == iters
        warmup, decay = cfg.param_scheduler
        assert (warmup.type, warmup.end) == ('LinearLR', 20)
        assert (decay.type, decay.begin, decay.end) == ('PolyLR', 20, iters)
        lr = {'lr-half': 0.01, 'lr-double': 0.04}.get(variant, 0.02)
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr)
