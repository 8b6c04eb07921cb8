"""Checkpoints save and load through mmengine on this torch, and only
weights-only: crafted files are refused with no side effect."""
import shutil

import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint, save_checkpoint

from tiny_runner import TinyNet, make_runner


def test_state_dict_round_trip(tmp_path):
    model = TinyNet()
    model.train()
    for _ in range(3):
        model(torch.randn(2, 3, 8, 8))
    path = str(tmp_path / 'model.pth')
    save_checkpoint(model.state_dict(), path)
    restored = TinyNet()
    load_checkpoint(restored, path, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    for key in ('running_mean', 'running_var', 'num_batches_tracked',
                'update_rate'):
        assert f'norm.{key}' in restored.state_dict()
    assert restored.norm.num_batches_tracked.item() == 3


def test_runner_resume_equals_uninterrupted(tmp_path):
    full = make_runner(tmp_path / 'full', 6)
    full.train()
    part = make_runner(tmp_path / 'part', 4)
    part.train()
    resumed = make_runner(tmp_path / 'part', 6, resume=True)
    resumed.train()  # loads iter_4.pth: weights_only load with mmengine types
    assert resumed.iter == 6
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert resumed.model.norm.num_batches_tracked.item() == 12 // 2


# --------------------------------------------------------------------------
# one weights-only loader: crafted files are refused with no side effect
# --------------------------------------------------------------------------
import fractions  # noqa: E402
import os  # noqa: E402
from collections import OrderedDict  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mmengine.logging.history_buffer import HistoryBuffer  # noqa: E402
from mmengine.runner import CheckpointLoader  # noqa: E402

import payloads  # noqa: E402
from mmbcn.compat import TRUST_ENV, CheckpointError, load_file  # noqa: E402

PAYLOADS = {
    'rebuild_from_type': payloads.rebuild_payload,
    'history_buffer_setstate': payloads.history_buffer_payload,
}
# variants without a path to code, each still outside what a checkpoint holds
VARIANTS = {
    'foreign_statistics_method': payloads.statistics_payload(),
    'history_buffer_extra_state': (
        payloads._global('mmengine.logging.history_buffer', 'HistoryBuffer')
        + b')\x81}' + payloads._str('_log_history') +
        payloads._global('builtins', 'print') + b'sb'),
    'getattr_of_numpy': (
        payloads._global('builtins', 'getattr') +
        payloads._global('numpy', 'ndarray') + payloads._str('__reduce__') +
        b'\x86R'),
}


def _safe_globals_state():
    return (set(map(repr, torch.serialization.get_safe_globals())),
            dict(HistoryBuffer._statistics_methods))


@pytest.fixture
def genuine(tmp_path):
    """A runner checkpoint (iter_2.pth of a TinyNet run)."""
    make_runner(tmp_path / 'run', 2).train()
    return str(tmp_path / 'run' / 'iter_2.pth')


@pytest.mark.parametrize('name', sorted(PAYLOADS))
def test_payloads_run_code_under_the_old_allow_list(tmp_path, name):
    """The crafted files are real attacks: with getattr and HistoryBuffer
    allowed (the previous allow-list) loading them runs the code."""
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    payloads.save_with({'meta': {'x': payloads.Raw(PAYLOADS[name](marker))}},
                       path)
    saved = dict(HistoryBuffer._statistics_methods)
    try:
        with torch.serialization.safe_globals([HistoryBuffer, getattr]):
            torch.load(path, weights_only=True)
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(saved)
    assert marker.exists()


@pytest.mark.parametrize('name', sorted(PAYLOADS))
@pytest.mark.parametrize('how', ['load_file', 'CheckpointLoader',
                                 'load_checkpoint'])
def test_payloads_spliced_into_a_runner_checkpoint_are_refused(
        tmp_path, genuine, name, how):
    marker = tmp_path / 'ran'
    path = str(tmp_path / 'iter_2.pth')
    payloads.splice(genuine, path, PAYLOADS[name](marker))
    before = _safe_globals_state()
    with pytest.raises(CheckpointError) as err:
        if how == 'load_file':
            load_file(path)
        elif how == 'CheckpointLoader':
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
        else:
            load_checkpoint(TinyNet(), path)
    assert not marker.exists()
    assert _safe_globals_state() == before
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith(f'{path}: refused to load')
    assert 'getattr' in message and f'{TRUST_ENV}={path}' in message


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_variants_are_refused_and_leave_the_process_as_it_was(tmp_path,
                                                              name):
    path = tmp_path / 'evil.pth'
    payloads.save_with({'meta': {'x': payloads.Raw(VARIANTS[name])}}, path)
    before = _safe_globals_state()
    with pytest.raises(CheckpointError, match='refused to load'):
        load_file(path)
    assert _safe_globals_state() == before
    assert HistoryBuffer([1.0], [1]).mean() == 1.0


def test_genuine_runner_checkpoint_restores_history_buffers(genuine):
    trusted = torch.load(genuine, map_location='cpu', weights_only=False)
    loaded = load_file(genuine)
    scalars = loaded['message_hub']['log_scalars']
    assert scalars and all(type(b) is HistoryBuffer for b in scalars.values())
    for key, buffer in trusted['message_hub']['log_scalars'].items():
        np.testing.assert_array_equal(scalars[key].data[0], buffer.data[0])
        np.testing.assert_array_equal(scalars[key].data[1], buffer.data[1])
        assert scalars[key].mean() == buffer.mean()
    for key, value in trusted['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)


def test_model_zoo_layouts_load(tmp_path):
    """torchvision (an OrderedDict with _metadata), mmdet/mmseg model zoo
    ({'meta': strings, classes, numpy}, 'state_dict'), a plain dict."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = net.state_dict()
    layouts = {
        'torchvision': state,
        'mmdet': dict(meta=dict(mmcv_version='1.3.8', config='model = 1',
                                CLASSES=('a', 'b'), epoch=12, iter=1000,
                                hook_msgs=dict(best=np.float64(0.5))),
                      state_dict=state,
                      optimizer=dict(state={}, param_groups=[dict(lr=0.1)])),
        'mmseg': dict(meta=dict(PALETTE=[[1, 2, 3]], seed=np.int64(0),
                                env_info='x'),
                      state_dict=OrderedDict(state)),
    }
    for name, obj in layouts.items():
        path = tmp_path / f'{name}.pth'
        torch.save(obj, path)
        loaded = load_file(str(path))
        sd = loaded.get('state_dict', loaded)
        assert all(torch.equal(sd[k], v) for k, v in state.items()), name
    assert isinstance(load_file(str(tmp_path / 'torchvision.pth')),
                      OrderedDict)


def test_trusted_files_opt_in(tmp_path, monkeypatch):
    path = tmp_path / 'fraction.pth'
    torch.save({'x': fractions.Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match='fractions.Fraction'):
        load_file(str(path))
    assert load_file(str(path), trust=True)['x'] == fractions.Fraction(1, 3)
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join(['/elsewhere', str(path)]))
    assert load_file(str(path))['x'] == fractions.Fraction(1, 3)


@pytest.mark.parametrize('kind', ['empty', 'zeros', 'random', 'truncated'])
def test_unreadable_files_are_one_line_errors(tmp_path, genuine, kind):
    path = tmp_path / 'bad.pth'
    data = open(genuine, 'rb').read()
    path.write_bytes(dict(empty=b'', zeros=b'\x00' * 10,
                          random=os.urandom(4096),
                          truncated=data[:len(data) // 2])[kind])
    with pytest.raises(CheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    message = str(err.value)
    assert message.startswith(f'{path}: not a readable checkpoint')
    assert '\n' not in message


# --------------------------------------------------------------------------
# URLs: the hub cache and downloads go through the same loader
# --------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path, monkeypatch):
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub' / 'checkpoints'
    torch.hub.set_dir(saved)


def test_cached_url_checkpoints_are_loaded_weights_only(tmp_path, hub):
    marker = tmp_path / 'ran'
    hub.mkdir(parents=True)
    payloads.save_with({'x': payloads.Raw(payloads.history_buffer_payload(
        marker))}, hub / 'evil-1234abcd.pth')
    url = 'https://models.example/zoo/evil-1234abcd.pth'
    with pytest.raises(CheckpointError) as err:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert not marker.exists()
    assert str(err.value).startswith(f'{url} (cached as ')
    # open-mmlab:// names map to URLs: the same path
    from mmengine.runner.checkpoint import get_external_models
    zoo_url = get_external_models()['resnet50_v1c']
    payloads.save_with({'x': payloads.Raw(payloads.rebuild_payload(
        marker))}, hub / zoo_url.rsplit('/', 1)[1])
    with pytest.raises(CheckpointError, match='refused to load'):
        CheckpointLoader.load_checkpoint('open-mmlab://resnet50_v1c')
    assert not marker.exists()


def test_downloads_land_in_the_hub_cache(tmp_path, hub, monkeypatch):
    source = tmp_path / 'served.pth'
    torch.save({'state_dict': {'w': torch.arange(3.)}}, source)
    fetched = []

    def download(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        shutil.copy(source, dst)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    url = 'https://models.example/zoo/served.pth'
    for _ in range(2):
        ckpt = CheckpointLoader.load_checkpoint(url, map_location='cpu')
        assert torch.equal(ckpt['state_dict']['w'], torch.arange(3.))
    assert fetched == [url] and (hub / 'served.pth').is_file()
