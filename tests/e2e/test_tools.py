"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh
on the small shapes configs (real mmdet / mmseg runs, a few iterations).

Every tool runs as a subprocess with ``OMP_NUM_THREADS=1``: on a loaded
2-core machine a 2-thread torch step is ~10x slower than a 1-thread one.
"""
import glob
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader

from mmbcn import apis
from mmbcn.schemes import scheme_names
from repo import REPO, free_port, shapes_config

TOOLS = osp.join(REPO, 'tools')
TIMEOUT = 300


DET_CONFIG = shapes_config('mask-rcnn*bcn-ws*.py')
SEG_CONFIG = shapes_config('deeplabv3*bcn-ws*.py')


def stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def data_options(config: str, data_root: str, max_iters: int = 2) -> dict:
    """--cfg-options that point ``config`` at ``data_root`` (dataset roots
    and evaluator annotation files), load in the main process, and train
    ``max_iters`` iterations, logging each, with one validation at the
    end."""
    cfg = Config.fromfile(config)
    options = {
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': max_iters,
        'default_hooks.logger.interval': 1,
    }
    old_root = None
    for split in ('train', 'val', 'test'):
        loader = f'{split}_dataloader'
        dataset = cfg[loader]['dataset']
        assert 'data_root' in dataset, f'{loader}.dataset has no data_root'
        old_root = dataset['data_root']
        options[f'{loader}.dataset.data_root'] = data_root + '/'
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    for split in ('val', 'test'):
        evaluator = cfg[f'{split}_evaluator']
        if isinstance(evaluator, dict) and evaluator.get('ann_file'):
            rel = osp.relpath(evaluator['ann_file'], old_root)
            options[f'{split}_evaluator.ann_file'] = osp.join(data_root, rel)
    return options


def cli_options(options: dict) -> list:
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def tool_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('LOCAL_RANK', None)
    env.update(extra)
    return env


def run(command: list, cwd, check: bool = True, **env):
    result = subprocess.run(
        [str(c) for c in command], cwd=str(cwd), env=tool_env(**env),
        capture_output=True, text=True, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    if check and result.returncode != 0:
        pytest.fail(f'{" ".join(map(str, command))} exited with '
                    f'{result.returncode}:\n{output[-6000:]}')
    return result.returncode, output


def python_tool(name: str, *args):
    return [sys.executable, osp.join(TOOLS, name), *args]


def load_checkpoint(path: str) -> dict:
    return CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


@pytest.fixture(scope='module')
def det_run(tmp_path_factory, shapes_root):
    """tools/train.py on the Mask R-CNN bcn-ws config, default work dir."""
    cwd = tmp_path_factory.mktemp('det')
    _, output = run(python_tool(
        'train.py', DET_CONFIG,
        *cli_options(data_options(DET_CONFIG, shapes_root))), cwd)
    return dict(cwd=cwd, output=output,
                work_dir=cwd / 'work_dirs' / stem(DET_CONFIG))


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory, shapes_root):
    """tools/train.py on the DeepLabV3 bcn-ws config with --norm gn."""
    cwd = tmp_path_factory.mktemp('seg')
    _, output = run(python_tool(
        'train.py', SEG_CONFIG, '--norm', 'gn',
        *cli_options(data_options(SEG_CONFIG, shapes_root))), cwd)
    return dict(cwd=cwd, output=output,
                work_dir=cwd / 'work_dirs' / f'{stem(SEG_CONFIG)}_gn')


# --------------------------------------------------------------------------
# Mask R-CNN (mmdet)
# --------------------------------------------------------------------------
def test_train_mask_rcnn(det_run):
    work_dir = det_run['work_dir']
    # default work dir: ./work_dirs/<config stem> (no --norm)
    assert (work_dir / 'iter_2.pth').is_file(), sorted(
        p.name for p in det_run['cwd'].rglob('*'))
    assert 'Iter(train) [2/2]' in det_run['output']
    assert 'coco/segm_mAP' in det_run['output']  # validation at the end
    dumped = Config.fromfile(str(work_dir / f'{stem(DET_CONFIG)}.py'))
    assert dumped.norm_scheme == 'bcn-ws'
    assert dumped.model.backbone.norm_cfg.type == 'BCN'
    assert dumped.model.backbone.conv_cfg.type == 'WSConv2d'
    checkpoint = load_checkpoint(work_dir / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    keys = checkpoint['state_dict']
    assert 'backbone.bcn1.running_var' in keys
    assert not any('.bn1.' in k for k in keys)


def test_test_mask_rcnn(det_run, shapes_root):
    cwd = det_run['cwd']
    checkpoint = det_run['work_dir'] / 'iter_2.pth'
    out = cwd / 'results' / 'preds.pkl'
    _, output = run(python_tool(
        'test.py', DET_CONFIG, checkpoint, '--work-dir', cwd / 'test_wd',
        '--out', out, '--show-dir', 'painted',
        *cli_options(data_options(DET_CONFIG, shapes_root))), cwd)
    assert 'coco/bbox_mAP' in output and 'coco/segm_mAP' in output
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2  # the two val images
    assert {'pred_instances', 'img_id'} <= set(predictions[0])
    assert 'masks' in predictions[0]['pred_instances']
    # --show-dir: <work_dir>/<timestamp>/<show_dir>, one image per sample
    painted = glob.glob(str(cwd / 'test_wd' / '*' / 'painted' / '*.png'))
    assert len(painted) == 2


def test_resume_auto_continues_the_iteration_count(det_run, shapes_root,
                                                   tmp_path):
    # a copy of the finished 2-iteration run, resumed to 4 iterations
    work_dir = tmp_path / 'resumed'
    shutil.copytree(det_run['work_dir'], work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    options = data_options(DET_CONFIG, shapes_root, max_iters=4)
    _, output = run(python_tool(
        'train.py', DET_CONFIG, '--work-dir', work_dir, '--resume',
        *cli_options(options)), tmp_path)
    assert 'resumed epoch: 0, iter: 2' in output
    assert 'Iter(train) [3/4]' in output
    assert 'Iter(train) [1/4]' not in output
    assert load_checkpoint(work_dir / 'iter_4.pth')['meta']['iter'] == 4


# --------------------------------------------------------------------------
# DeepLabV3 (mmseg), --norm
# --------------------------------------------------------------------------
def test_train_deeplabv3_with_norm(seg_run):
    work_dir = seg_run['work_dir']
    # --norm gn on a bcn-ws config: work_dirs/<stem>_gn, GN in the model
    assert (work_dir / 'iter_2.pth').is_file(), sorted(
        p.name for p in seg_run['cwd'].rglob('*'))
    assert not (seg_run['cwd'] / 'work_dirs' / stem(SEG_CONFIG)).exists()
    assert 'mIoU' in seg_run['output']
    dumped = Config.fromfile(str(work_dir / f'{stem(SEG_CONFIG)}.py'))
    assert dumped.norm_scheme == 'gn'
    for module in ('backbone', 'decode_head', 'auxiliary_head'):
        assert dumped.model[module].norm_cfg.type == 'GN', module
    assert 'WSConv2d' not in dumped.pretty_text
    assert 'BCN' not in dumped.pretty_text
    keys = load_checkpoint(work_dir / 'iter_2.pth')['state_dict']
    assert 'backbone.layer1.0.gn1.weight' in keys
    assert not any('bcn' in k or 'running_mean' in k for k in keys)


def test_test_deeplabv3_with_norm(seg_run, shapes_root):
    cwd = seg_run['cwd']
    out = cwd / 'label_maps'
    _, output = run(python_tool(
        'test.py', SEG_CONFIG, seg_run['work_dir'] / 'iter_2.pth',
        '--norm', 'gn', '--out', out,
        *cli_options(data_options(SEG_CONFIG, shapes_root))), cwd)
    assert 'mIoU' in output
    # the GN checkpoint loaded into the GN model without missing keys
    assert 'missing keys' not in output
    assert len(list(out.glob('*.png'))) == 2


def test_resume_from_path(seg_run, shapes_root, tmp_path):
    options = data_options(SEG_CONFIG, shapes_root, max_iters=3)
    _, output = run(python_tool(
        'train.py', SEG_CONFIG, '--norm', 'gn', '--work-dir',
        tmp_path / 'from_path', '--resume',
        seg_run['work_dir'] / 'iter_2.pth', *cli_options(options)),
        tmp_path)
    assert 'resumed epoch: 0, iter: 2' in output
    assert 'Iter(train) [3/3]' in output
    checkpoint = load_checkpoint(tmp_path / 'from_path' / 'iter_3.pth')
    assert checkpoint['meta']['iter'] == 3


def test_unknown_norm_lists_the_valid_names(tmp_path):
    code, output = run(python_tool('train.py', SEG_CONFIG, '--norm',
                                   'layernorm'), tmp_path, check=False)
    assert code != 0
    assert 'layernorm' in output
    for name in scheme_names():
        assert f"'{name}'" in output
    assert 'Traceback' not in output


def test_bad_num_groups_is_one_clear_error(tmp_path):
    """A layer argument the model build refuses (BCN's num_groups not
    dividing the channels) ends train.py with one line naming the valid
    values, not a traceback."""
    code, output = run(python_tool(
        'train.py', SEG_CONFIG, '--work-dir', tmp_path / 'work',
        '--cfg-options', 'model.backbone.norm_cfg.num_groups=7'), tmp_path,
        check=False)
    assert code != 0
    assert 'num_groups=7 does not divide' in output
    assert 'valid values are the divisors' in output
    assert 'Traceback' not in output


def test_missing_config_is_a_clear_error(tmp_path):
    code, output = run(python_tool('train.py', 'configs/nope.py'), tmp_path,
                       check=False)
    assert code != 0
    assert "config file 'configs/nope.py' does not exist" in output
    assert 'Traceback' not in output


def test_missing_data_is_a_clear_error(tmp_path):
    missing = str(tmp_path / 'no_data')
    code, output = run(python_tool(
        'train.py', SEG_CONFIG, '--work-dir', tmp_path / 'work',
        *cli_options(data_options(SEG_CONFIG, missing))), tmp_path,
        check=False)
    assert code == 1
    assert 'train.py: error: Shapes image directory not found' in output
    assert missing in output and 'make_shapes.py' in output
    assert 'Traceback' not in output


# --------------------------------------------------------------------------
# distributed on CPU
# --------------------------------------------------------------------------
def test_dist_train_two_cpu_processes(shapes_root, tmp_path):
    work_dir = tmp_path / 'dist'
    command = ['bash', osp.join(TOOLS, 'dist_train.sh'), SEG_CONFIG, 2,
               '--work-dir', work_dir,
               *cli_options(data_options(SEG_CONFIG, shapes_root))]
    env = dict(PYTHON=sys.executable,
               CUDA_VISIBLE_DEVICES='')  # CPU processes (gloo) anywhere
    code, output = run(command, tmp_path, check=False,
                       PORT=str(free_port()), **env)
    if code != 0 and 'address already in use' in output.lower():
        # the free port was taken between free_port() and torchrun
        code, output = run(command, tmp_path, check=False,
                           PORT=str(free_port()), **env)
    assert code == 0, output[-6000:]
    assert 'Distributed training: True' in output
    assert "dist_cfg: {'backend': 'gloo'}" in output
    assert 'Iter(train) [2/2]' in output and 'mIoU' in output
    assert load_checkpoint(work_dir / 'iter_2.pth')['meta']['iter'] == 2


@pytest.fixture
def gloo_group_of_one(monkeypatch):
    for key, value in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    torch.distributed.init_process_group('gloo', rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='SyncBN is refused on machines without CUDA')
def test_syncbn_with_launcher_on_cpu_is_a_clear_error(tmp_path,
                                                      gloo_group_of_one):
    cfg = apis.load_config(SEG_CONFIG, norm='syncbn', launcher='pytorch',
                           work_dir=tmp_path)
    with pytest.raises(RuntimeError) as error:
        apis.build_runner(cfg)
    message = str(error.value)
    assert 'SyncBN' in message and 'CUDA' in message
    assert 'model.backbone.norm_cfg' in message
    others = [name for name in scheme_names() if name != 'syncbn']
    assert f'--norm {"|".join(others)}' in message
    assert '--launcher none' in message


def test_syncbn_without_launcher_trains(shapes_root, tmp_path, one_thread):
    cfg = apis.load_config(
        SEG_CONFIG, norm='syncbn', work_dir=tmp_path,
        cfg_options=data_options(SEG_CONFIG, shapes_root, max_iters=1))
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    runner = apis.train(cfg)
    assert runner.iter == 1
    modules = list(runner.model.modules())
    # mmengine reverts SyncBN to BN in a non-distributed run
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in modules)
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for m in modules)
