"""The protocol end to end with mmbcn's tools: tools/train.py pretrains a
backbone on the built-in classification task, and the fine-tuning config
starts from that checkpoint (a few iterations each, real runs)."""
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.runner import CheckpointLoader

from mmbcn.datasets.shapes_cls import generate_shapes_cls
from repo import REPO

PRETRAIN = osp.join(REPO, 'configs', 'pretrain',
                    'resnet18_bcn-ws_1xb32-300i_shapes-cls.py')
FINETUNE = osp.join(REPO, 'configs', 'shapes', 'finetune',
                    'mask-rcnn_r18-cls_fpn_bcn-ws-all_1xb2-100i_shapes.py')


def train(config, work_dir, cwd, *options):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
         '--work-dir', str(work_dir), '--cfg-options', *options],
        cwd=str(cwd), env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def loaders(root, iters):
    options = [f'train_cfg.max_iters={iters}',
               f'train_cfg.val_interval={iters}']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={root}',
                    f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    return options


def test_pretrain_then_finetune(tmp_path, shapes_root):
    cls_root = tmp_path / 'shapes_cls'
    generate_shapes_cls(cls_root, num_train=8, num_val=4, img_size=32,
                        progress=False)
    out = train(PRETRAIN, tmp_path / 'pretrain', tmp_path,
                *loaders(cls_root, 3), 'train_dataloader.batch_size=4')
    assert 'cls/top1' in out
    with open(tmp_path / 'pretrain' / 'last_checkpoint') as f:
        checkpoint = f.read().strip()
    pretrained = CheckpointLoader.load_checkpoint(checkpoint)['state_dict']

    options = loaders(f'{shapes_root}/', 2) + [
        f'val_evaluator.ann_file={shapes_root}/annotations/'
        'instances_val.json',
        f'test_evaluator.ann_file={shapes_root}/annotations/'
        'instances_val.json',
        f'model.backbone.init_cfg.checkpoint={checkpoint}']
    out = train(FINETUNE, tmp_path / 'finetune', tmp_path, *options)
    assert f'load backbone. in model from: {checkpoint}' in out
    with open(tmp_path / 'finetune' / 'last_checkpoint') as f:
        tuned = CheckpointLoader.load_checkpoint(f.read().strip())
    tuned = tuned['state_dict']
    # frozen_stages=1: the stem and the first stage keep the pretrained
    # weights; the later stages start from them and train
    stem_keys = [k for k in tuned if k.startswith(('backbone.conv1.',
                                                   'backbone.layer1.'))]
    assert stem_keys
    for key in stem_keys:
        assert torch.equal(tuned[key], pretrained[key]), key
    moved = [k for k in tuned if k.startswith('backbone.layer4.') and
             k.endswith('weight') and
             not torch.equal(tuned[k], pretrained[k])]
    assert moved
