"""mmbcn.apis: load_config (the tools' command-line semantics) and the test
options. No training here (see e2e/test_tools.py for real runs)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmbcn import apis
from mmbcn.schemes import scheme_names
from repo import shapes_config

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(),
                             reason='the CPU-distributed shim is for '
                             'machines without CUDA')


DET_CONFIG = shapes_config('mask-rcnn*bcn-ws*.py')
SEG_CONFIG = shapes_config('deeplabv3*bcn-ws*.py')
DET_STEM = osp.splitext(osp.basename(DET_CONFIG))[0]
SEG_STEM = osp.splitext(osp.basename(SEG_CONFIG))[0]


# --------------------------------------------------------------------------
# load_config: norm scheme
# --------------------------------------------------------------------------
def test_config_scheme_is_applied():
    cfg = apis.load_config(DET_CONFIG)
    assert cfg.norm_scheme == 'bcn-ws'
    for module in (cfg.model.backbone, cfg.model.neck,
                   cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head):
        assert module.norm_cfg.type == 'BCN'
        assert module.conv_cfg.type == 'WSConv2d'
    assert cfg.launcher == 'none'


def test_norm_overrides_the_config_scheme():
    cfg = apis.load_config(SEG_CONFIG, norm='gn')
    assert cfg.norm_scheme == 'gn'
    for module in ('backbone', 'decode_head', 'auxiliary_head'):
        assert cfg.model[module].norm_cfg.type == 'GN'
        assert cfg.model[module].get('conv_cfg') is None
    assert 'BCN' not in cfg.pretty_text


def test_cfg_options_edit_the_norm_layers():
    cfg = apis.load_config(SEG_CONFIG, norm='gn', cfg_options={
        'model.backbone.norm_cfg.num_groups': 16})
    assert cfg.model.backbone.norm_cfg == dict(type='GN', num_groups=16,
                                               requires_grad=True)
    assert cfg.model.decode_head.norm_cfg.num_groups == 32


def test_norm_scheme_is_a_label_not_a_rewrite():
    # naming another scheme is an error (the layers stay BCN + WS)
    with pytest.raises(ValueError, match="norm_scheme='gn-ws' does not "
                       'describe the model'):
        apis.load_config(SEG_CONFIG, cfg_options={'norm_scheme': 'gn-ws'})


def test_unknown_norm_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        apis.load_config(SEG_CONFIG, norm='layernorm')
    assert 'layernorm' in str(error.value)
    assert ', '.join(scheme_names()) in str(error.value)


def test_missing_config_is_a_clear_error(tmp_path):
    missing = str(tmp_path / 'nope.py')
    with pytest.raises(FileNotFoundError, match='config file .*nope.py.* '
                       'does not exist'):
        apis.load_config(missing)


def test_a_config_object_is_copied():
    cfg = Config.fromfile(SEG_CONFIG)
    loaded = apis.load_config(cfg, norm='gn')
    assert loaded.model.backbone.norm_cfg.type == 'GN'
    assert cfg.model.backbone.norm_cfg.type == 'BCN'  # the file's, untouched
    assert loaded.work_dir == f'./work_dirs/{SEG_STEM}_gn'


def test_launcher():
    assert apis.load_config(SEG_CONFIG, launcher='slurm').launcher == 'slurm'
    with pytest.raises(ValueError, match='none, pytorch, slurm, mpi'):
        apis.load_config(SEG_CONFIG, launcher='ssh')


# --------------------------------------------------------------------------
# load_config: work dir
# --------------------------------------------------------------------------
def test_default_work_dir_is_the_config_stem():
    cfg = apis.load_config(DET_CONFIG)
    assert cfg.work_dir == f'./work_dirs/{DET_STEM}'


def test_default_work_dir_names_the_norm():
    cfg = apis.load_config(DET_CONFIG, norm='gn-ws')
    assert cfg.work_dir == f'./work_dirs/{DET_STEM}_gn-ws'
    assert apis.default_work_dir('a/b/c.py', dict(name='bcn', norm=dict(
        num_groups=16))) == './work_dirs/c_bcn'


def test_work_dir_argument_and_config_win(tmp_path):
    cfg = apis.load_config(DET_CONFIG, norm='gn', work_dir=tmp_path / 'w')
    assert cfg.work_dir == str(tmp_path / 'w')
    # a work_dir in the config (here from --cfg-options) beats the default
    cfg = apis.load_config(DET_CONFIG, norm='gn',
                           cfg_options={'work_dir': 'mine'})
    assert cfg.work_dir == 'mine'


# --------------------------------------------------------------------------
# load_config: amp, auto-scale-lr
# --------------------------------------------------------------------------
def test_amp():
    cfg = apis.load_config(SEG_CONFIG, amp=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.optimizer.type == 'SGD'  # kept
    assert apis.load_config(SEG_CONFIG).optim_wrapper.type == 'OptimWrapper'


def test_amp_refuses_a_custom_optim_wrapper():
    with pytest.raises(ValueError, match='MyWrapper'):
        apis.load_config(SEG_CONFIG, amp=True,
                         cfg_options={'optim_wrapper.type': 'MyWrapper'})


def test_auto_scale_lr():
    cfg = apis.load_config(DET_CONFIG)
    assert cfg.auto_scale_lr.enable is False
    cfg = apis.load_config(DET_CONFIG, auto_scale_lr=True)
    assert cfg.auto_scale_lr.enable is True
    assert cfg.auto_scale_lr.base_batch_size == 2


def test_auto_scale_lr_needs_base_batch_size(tmp_path):
    config = tmp_path / 'no_base_batch.py'
    config.write_text(f'_base_ = {SEG_CONFIG!r}\n'
                      'auto_scale_lr = dict(_delete_=True, enable=False)\n')
    assert apis.load_config(str(config)).auto_scale_lr == dict(enable=False)
    with pytest.raises(ValueError, match='auto_scale_lr.base_batch_size'):
        apis.load_config(str(config), auto_scale_lr=True)


# --------------------------------------------------------------------------
# load_config: resume (mmdet's semantics)
# --------------------------------------------------------------------------
def test_no_resume_keeps_the_config():
    cfg = apis.load_config(SEG_CONFIG)
    assert cfg.resume is False and cfg.load_from is None
    cfg = apis.load_config(SEG_CONFIG, resume=False,
                           cfg_options={'load_from': 'init.pth'})
    assert cfg.resume is False and cfg.load_from == 'init.pth'


@pytest.mark.parametrize('resume', ['auto', True])
def test_resume_auto(resume):
    # auto resume: the latest checkpoint in the work dir; a load_from of the
    # config is dropped (resume wins)
    cfg = apis.load_config(SEG_CONFIG, resume=resume,
                           cfg_options={'load_from': 'init.pth'})
    assert cfg.resume is True and cfg.load_from is None


def test_resume_from_path(tmp_path):
    checkpoint = tmp_path / 'iter_10.pth'
    checkpoint.write_bytes(b'')
    cfg = apis.load_config(SEG_CONFIG, resume=str(checkpoint))
    assert cfg.resume is True and cfg.load_from == str(checkpoint)
    # remote checkpoints are left to mmengine
    url = 'https://example.com/iter_10.pth'
    assert apis.load_config(SEG_CONFIG, resume=url).load_from == url


def test_resume_from_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='resume from'):
        apis.load_config(SEG_CONFIG, resume=str(tmp_path / 'none.pth'))


# --------------------------------------------------------------------------
# build_runner / test options (checked before anything is built)
# --------------------------------------------------------------------------
def test_build_runner_names_an_unknown_scope():
    cfg = Config(dict(default_scope='mmpretrain', model=dict(type='X')))
    with pytest.raises(ValueError, match="'mmpretrain'"):
        apis.build_runner(cfg)


def test_test_checks_checkpoint_and_out(tmp_path):
    cfg = apis.load_config(DET_CONFIG, work_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match='none.pth'):
        apis.test(cfg, str(tmp_path / 'none.pth'))
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ValueError, match='pkl'):
        apis.test(cfg, str(checkpoint), out=str(tmp_path / 'preds.json'))


def test_enable_visualization():
    cfg = apis.enable_visualization(apis.load_config(DET_CONFIG),
                                    show_dir='painted')
    hook = cfg.default_hooks.visualization
    assert hook.draw is True and hook.test_out_dir == 'painted'
    assert not hook.get('show', False)
    cfg = apis.enable_visualization(apis.load_config(SEG_CONFIG), show=True,
                                    show_dir='painted', wait_time=0.5)
    hook = cfg.default_hooks.visualization
    assert hook.draw and hook.show and hook.wait_time == 0.5
    assert cfg.visualizer.save_dir == 'painted'
    cfg = apis.load_config(SEG_CONFIG,
                           cfg_options={'default_hooks.visualization': None})
    with pytest.raises(ValueError, match='VisualizationHook'):
        apis.enable_visualization(cfg, show_dir='painted')


def test_tta_of_mask_rcnn_is_refused():
    # mmdet 3.3.0's DetTTAModel merges boxes only
    with pytest.raises(ValueError, match='mask head'):
        apis.enable_tta(apis.load_config(DET_CONFIG))


def test_tta_of_deeplabv3():
    cfg = apis.load_config(SEG_CONFIG)
    assert 'tta_model' in cfg  # mmseg's default_runtime
    if 'tta_pipeline' not in cfg:
        with pytest.raises(ValueError, match='tta_pipeline'):
            apis.enable_tta(apis.load_config(SEG_CONFIG))
        cfg.tta_pipeline = [dict(type='LoadImageFromFile'),
                            dict(type='TestTimeAug', transforms=[
                                [dict(type='RandomFlip', prob=1.)],
                                [dict(type='LoadAnnotations')],
                                [dict(type='PackSegInputs')]])]
    apis.enable_tta(cfg)
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.type == 'EncoderDecoder'
    assert cfg.model.module.backbone.norm_cfg.type == 'BCN'
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline


def test_amp_without_a_device_says_what_it_needs(tmp_path):
    """mmengine's AmpOptimWrapper asserts a GPU-like device; train() says
    so before building anything (CPU-only machines: the message; with
    CUDA: none)."""
    cfg = apis.load_config(SEG_CONFIG, amp=True, work_dir=tmp_path / 'w')
    error = apis.amp_device_error(cfg)
    assert apis.amp_device_error(apis.load_config(SEG_CONFIG)) is None
    if torch.cuda.is_available():
        assert error is None
        return
    assert error.startswith('mixed precision (--amp, AmpOptimWrapper) needs '
                            'a CUDA, NPU, MLU or MUSA device')
    with pytest.raises(ValueError, match='needs a CUDA, NPU, MLU or MUSA'):
        apis.train(cfg)
    assert not (tmp_path / 'w').exists()  # nothing built
