"""mmbcn.compat.cpu_distributed: distributed runs on CPU-only machines
(gloo). No training here (see e2e/test_tools.py for real runs)."""
import os
import os.path as osp

import pytest
import torch

from mmbcn import apis, compat
from repo import free_port, shapes_config

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(),
                             reason='the CPU-distributed shim is for '
                             'machines without CUDA')


DET_CONFIG = shapes_config('mask-rcnn*bcn-ws*.py')
SEG_CONFIG = shapes_config('deeplabv3*bcn-ws*.py')
DET_STEM = osp.splitext(osp.basename(DET_CONFIG))[0]
SEG_STEM = osp.splitext(osp.basename(SEG_CONFIG))[0]


def test_find_syncbn():
    cfg = apis.load_config(SEG_CONFIG, norm='syncbn')
    assert compat.find_syncbn(cfg) == [
        'model.backbone.norm_cfg', 'model.decode_head.norm_cfg',
        'model.auxiliary_head.norm_cfg']
    assert compat.find_syncbn(apis.load_config(SEG_CONFIG)) == []
    cfg = apis.load_config(SEG_CONFIG, cfg_options={'sync_bn': 'torch'})
    assert compat.find_syncbn(cfg) == ['sync_bn']


def test_no_launcher_changes_nothing():
    cfg = apis.load_config(SEG_CONFIG, norm='syncbn')
    assert compat.prepare_cpu_distributed(cfg) is False
    assert 'model_wrapper_cfg' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


@NO_CUDA
def test_syncbn_with_a_launcher_is_refused_before_any_process_group():
    cfg = apis.load_config(SEG_CONFIG, norm='syncbn', launcher='pytorch')
    with pytest.raises(RuntimeError) as error:
        apis.build_runner(cfg)  # refused before the Runner is built
    message = str(error.value)
    assert 'needs CUDA and NCCL' in message
    for name in ('bn', 'gn', 'gn-ws', 'bcn', 'bcn-ws'):
        assert name in message
    assert 'reverts SyncBN to BN' in message
    assert not torch.distributed.is_initialized()


@pytest.fixture
def torchrun_env_of_one(monkeypatch):
    for key, value in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                           MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@NO_CUDA
def test_pytorch_launcher_on_cpu_inits_gloo(torchrun_env_of_one):
    cfg = apis.load_config(SEG_CONFIG, launcher='pytorch', cfg_options={
        'env_cfg.dist_cfg.timeout': 600, 'find_unused_parameters': True})
    assert compat.prepare_cpu_distributed(cfg) is True
    assert torch.distributed.is_initialized()
    assert torch.distributed.get_backend() == 'gloo'
    assert torch.distributed.get_world_size() == 1
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=600)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)


@NO_CUDA
def test_an_existing_group_and_wrapper_are_kept(torchrun_env_of_one):
    torch.distributed.init_process_group('gloo', rank=0, world_size=1)
    group = torch.distributed.group.WORLD
    cfg = apis.load_config(SEG_CONFIG, launcher='pytorch', cfg_options={
        'model_wrapper_cfg': dict(type='MMDistributedDataParallel',
                                  broadcast_buffers=True)})
    assert compat.prepare_cpu_distributed(cfg) is True
    assert torch.distributed.group.WORLD is group
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         broadcast_buffers=True,
                                         device_ids=None)


def unset(monkeypatch, *names):
    """Unset environment variables; what cpu_dist_env exports into them is
    undone after the test (monkeypatch forgets a plain delenv of a variable
    that was not set)."""
    for name in names:
        monkeypatch.setenv(name, 'unset')
        monkeypatch.delenv(name)


def test_slurm_environment(monkeypatch):
    for key, value in dict(SLURM_PROCID='5', SLURM_NTASKS='8',
                           SLURM_LOCALID='1', SLURM_NODELIST='node[1-2]',
                           MASTER_ADDR='node1').items():
        monkeypatch.setenv(key, value)
    unset(monkeypatch, 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK')
    env = compat.cpu_dist_env('slurm')
    assert env == dict(RANK=5, WORLD_SIZE=8, LOCAL_RANK=1,
                       MASTER_ADDR='node1', MASTER_PORT='29500')
    assert compat.cpu_dist_env('slurm', port=29999)['MASTER_PORT'] == '29999'
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'],
            os.environ['LOCAL_RANK']) == ('5', '8', '1')


def test_slurm_without_scontrol_is_a_clear_error(monkeypatch):
    for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='2',
                           SLURM_NODELIST='node[1-2]',
                           PATH='/nonexistent').items():
        monkeypatch.setenv(key, value)
    unset(monkeypatch, 'MASTER_ADDR')
    with pytest.raises(RuntimeError, match='set MASTER_ADDR'):
        compat.cpu_dist_env('slurm')


def test_launcher_environment_must_be_set(monkeypatch):
    unset(monkeypatch, 'RANK')
    with pytest.raises(RuntimeError, match='RANK is not set'):
        compat.cpu_dist_env('pytorch')
