"""ImageNet WS ResNet converters: the converted mmdet / mmseg ResNet computes
what the source network computed.

The sources are synthetic checkpoints in the documented layouts (the BCN
authors' BCN+WS ResNets, mmdet's GN+WS ResNets), with every weight and
statistic random, and the source networks are re-implemented here in plain
torch (float64) from the formulas: the authors' WS divides by
sqrt(var_unbiased + eps), mmcv's ConvWS by (std_unbiased + eps); BCN is a
BatchNorm with running statistics followed by a group normalization with a
per-group affine.
"""
import copy
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from mmbcn import apply_scheme
from mmbcn.converters import (LayoutError, convert_bcn_ws_resnet,
                              convert_gn_ws_resnet, convert_resnet,
                              ws_reparametrize)
from mmbcn.models.layers.ws_conv import standardize_weight
from repo import REPO

EPS = 1e-5
BASE = 8      # stem / base channels of the tiny ResNets
GROUPS = 4    # BCN / GN groups (the channel counts 8 .. 256 divide by 4)
ARCH = {18: ('basic', (2, 2, 2, 2)), 50: ('bottleneck', (3, 4, 6, 3))}
SOURCE_WS = {'bcn-ws': 'var-unbiased', 'gn-ws': 'std'}


# --------------------------------------------------------------------------
# Synthetic source checkpoints
# --------------------------------------------------------------------------
def make_source(kind, depth=50, seed=0):
    """A state dict in the source layout with random weights / statistics.

    Filters get per-filter scales from 1e-3 to 1e-1 (so the WS eps matters)
    and non-zero means.
    """
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    sd = OrderedDict()

    def conv(name, cout, cin, k):
        scale = 10 ** (rand(cout, 1, 1, 1) * 2 - 3)
        offset = randn(cout, 1, 1, 1) * scale
        sd[f'{name}.weight'] = randn(cout, cin, k, k) * scale + offset

    def norm(name, c):
        if kind == 'bcn-ws':
            sd[f'{name}.weight'] = 0.5 + rand(1, GROUPS, 1)
            sd[f'{name}.bias'] = 0.3 * randn(1, GROUPS, 1)
            sd[f'{name}.pbn.weight'] = 0.5 + rand(c)
            sd[f'{name}.pbn.bias'] = 0.3 * randn(c)
            sd[f'{name}.pbn.running_mean'] = 0.5 * randn(c)
            sd[f'{name}.pbn.running_var'] = 0.3 + 2 * rand(c)
            sd[f'{name}.pbn.num_batches_tracked'] = torch.randint(
                1000, 100000, (), generator=gen)
        else:
            sd[f'{name}.weight'] = 0.5 + rand(c)
            sd[f'{name}.bias'] = 0.3 * randn(c)

    abbr = 'bn' if kind == 'bcn-ws' else 'gn'
    block, stage_blocks = ARCH[depth]
    conv('conv1', BASE, 3, 7)
    norm(f'{abbr}1', BASE)
    inplanes = BASE
    for k, blocks in enumerate(stage_blocks):
        planes = BASE * 2**k
        for i in range(blocks):
            p = f'layer{k + 1}.{i}.'
            if block == 'bottleneck':
                out = planes * 4
                conv(p + 'conv1', planes, inplanes, 1)
                norm(p + f'{abbr}1', planes)
                conv(p + 'conv2', planes, planes, 3)
                norm(p + f'{abbr}2', planes)
                conv(p + 'conv3', out, planes, 1)
                norm(p + f'{abbr}3', out)
            else:
                out = planes
                conv(p + 'conv1', planes, inplanes, 3)
                norm(p + f'{abbr}1', planes)
                conv(p + 'conv2', planes, planes, 3)
                norm(p + f'{abbr}2', planes)
            if i == 0 and (k > 0 or inplanes != out):
                conv(p + 'downsample.0', out, inplanes, 1)
                norm(p + 'downsample.1', out)
            inplanes = out
    sd['fc.weight'] = randn(10, inplanes)
    sd['fc.bias'] = randn(10)
    return sd


# --------------------------------------------------------------------------
# The source networks, from the formulas (float64)
# --------------------------------------------------------------------------
def ws_reference(w, semantics):
    flat = w.flatten(1)
    mean = flat.mean(1)
    if semantics == 'var-unbiased':     # the BCN authors' ImageNet code
        denom = (flat.var(1, unbiased=True) + EPS).sqrt()
    elif semantics == 'std':            # mmcv ConvWS
        denom = flat.std(1, unbiased=True) + EPS
    else:                               # biased variance, eps inside
        denom = (flat.var(1, unbiased=False) + EPS).sqrt()
    return (w - mean.view(-1, 1, 1, 1)) / denom.view(-1, 1, 1, 1)


def group_standardize(x, groups):
    xg = x.reshape(x.shape[0], groups, -1)
    mean = xg.mean(-1, keepdim=True)
    var = (xg - mean).pow(2).mean(-1, keepdim=True)
    return (xg - mean) / (var + EPS).sqrt()


def bcn_reference(x, sd, name):
    shape = (1, -1, 1, 1)
    x1 = (x - sd[f'{name}.pbn.running_mean'].view(shape)) / (
        sd[f'{name}.pbn.running_var'].view(shape) + EPS).sqrt()
    x1 = x1 * sd[f'{name}.pbn.weight'].view(shape) + \
        sd[f'{name}.pbn.bias'].view(shape)
    groups = sd[f'{name}.weight'].shape[1]
    y = group_standardize(x1, groups)       # (N, G, -1)
    y = sd[f'{name}.weight'] * y + sd[f'{name}.bias']   # per-group affine
    return y.reshape(x.shape)


def gn_reference(x, sd, name):
    y = group_standardize(x, GROUPS).reshape(x.shape)
    return y * sd[f'{name}.weight'].view(1, -1, 1, 1) + \
        sd[f'{name}.bias'].view(1, -1, 1, 1)


def reference_features(sd, x, kind):
    sd = {k: v.double() for k, v in sd.items()}
    semantics = SOURCE_WS[kind]
    abbr = 'bn' if kind == 'bcn-ws' else 'gn'
    norm_fn = bcn_reference if kind == 'bcn-ws' else gn_reference

    def conv(x, name, stride=1, padding=0):
        return F.conv2d(x, ws_reference(sd[f'{name}.weight'], semantics),
                        stride=stride, padding=padding)

    def norm(x, name):
        return norm_fn(x, sd, name)

    x = x.double()
    x = F.relu(norm(conv(x, 'conv1', 2, 3), f'{abbr}1'))
    x = F.max_pool2d(x, 3, 2, 1)
    bottleneck = 'layer1.0.conv3.weight' in sd
    feats = []
    k = 1
    while f'layer{k}.0.conv1.weight' in sd:
        i = 0
        while f'layer{k}.{i}.conv1.weight' in sd:
            p = f'layer{k}.{i}.'
            stride = 2 if k > 1 and i == 0 else 1
            if bottleneck:
                out = F.relu(norm(conv(x, p + 'conv1'), p + f'{abbr}1'))
                out = F.relu(norm(conv(out, p + 'conv2', stride, 1),
                                  p + f'{abbr}2'))
                out = norm(conv(out, p + 'conv3'), p + f'{abbr}3')
            else:
                out = F.relu(norm(conv(x, p + 'conv1', stride, 1),
                                  p + f'{abbr}1'))
                out = norm(conv(out, p + 'conv2', 1, 1), p + f'{abbr}2')
            if f'{p}downsample.0.weight' in sd:
                identity = norm(conv(x, p + 'downsample.0', stride),
                                p + 'downsample.1')
            else:
                identity = x
            x = F.relu(out + identity)
            i += 1
        feats.append(x)
        k += 1
    return feats


# --------------------------------------------------------------------------
# The targets: mmdet / mmseg ResNet with the schemes
# --------------------------------------------------------------------------
def build_backbone(scheme, depth=50, eps_mode='var', scope='mmdet',
                   init_cfg=None):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        top = 'RetinaNet'
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        top = 'EncoderDecoder'
    register_all_modules(init_default_scope=False)
    model = dict(type=top, backbone=dict(
        type='ResNet', depth=depth, stem_channels=BASE, base_channels=BASE,
        out_indices=(0, 1, 2, 3), style='pytorch'))
    spec = dict(name=scheme, norm=dict(num_groups=GROUPS))
    if eps_mode != 'var':
        spec['conv'] = dict(eps_mode=eps_mode)
    apply_scheme(model, spec, scope=scope)
    assert model['backbone']['conv_cfg']['type'] == 'WSConv2d'
    cfg = model['backbone']
    if init_cfg is not None:
        cfg['init_cfg'] = init_cfg
    with MODELS.switch_scope_and_registry(scope) as registry:
        return registry.build(cfg)


def features(backbone, x):
    backbone.eval()
    with torch.no_grad():
        return backbone(x)


def assert_matches_reference(backbone, x, refs, tol=1e-4):
    """The eval-mode stage outputs equal the reference features.

    Computed in float64 (a copy of the backbone) they agree to ``tol``
    element by element: what remains is the float32 rounding of the stored
    weights. In float32, as deployed, they agree to ``tol`` relative to each
    stage's largest feature; float32 arithmetic alone (the GN+WS weights
    loaded bit for bit) already differs by ~2e-4 on features of ~10.
    """
    outs64 = features(copy.deepcopy(backbone).double(), x.double())
    outs32 = features(backbone, x)
    assert len(outs64) == len(outs32) == len(refs) == 4
    for out64, out32, ref in zip(outs64, outs32, refs):
        assert out32.dtype == torch.float32 and out32.shape == ref.shape
        torch.testing.assert_close(out64, ref, atol=tol, rtol=tol)
        scale = ref.abs().max().item()
        assert (out32.double() - ref).abs().max().item() <= tol * scale


@pytest.fixture(scope='module')
def image():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 64, 64, generator=gen)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------
@pytest.mark.parametrize('depth,eps_mode', [(50, 'var'), (50, 'std'),
                                            (18, 'var')])
def test_bcn_ws_to_mmdet_resnet(depth, eps_mode, image):
    source = make_source('bcn-ws', depth)
    result = convert_bcn_ws_resnet(source, eps_mode=eps_mode)
    assert result.dropped == ['fc.weight', 'fc.bias']
    assert 'fc.weight' not in result.state_dict
    meta = result.meta
    assert meta['depth'] == depth and meta['base_channels'] == BASE
    assert meta['norm_cfg']['num_groups'] == GROUPS
    assert meta['conv_cfg'] == dict(type='WSConv2d', eps_mode=eps_mode)
    sd = result.state_dict
    assert sd['bcn1.weight'].shape == (GROUPS, )
    assert torch.equal(sd['layer1.0.bcn1.running_mean'],
                       source['layer1.0.bn1.pbn.running_mean'])
    assert torch.equal(sd['layer2.0.downsample.1.batch_weight'],
                       source['layer2.0.downsample.1.pbn.weight'])
    assert sd['bcn1.num_batches_tracked'] == \
        source['bn1.pbn.num_batches_tracked']

    backbone = build_backbone('bcn-ws', depth, eps_mode)
    assert backbone.norm1_name == 'bcn1'
    backbone.load_state_dict(sd, strict=True)
    refs = reference_features(source, image, 'bcn-ws')
    assert_matches_reference(backbone, image, refs)

    if depth == 50 and eps_mode == 'var':
        # the stored weights as they are give other features: the
        # re-parametrization is what makes them match
        raw = dict(sd)
        raw.update({k: v for k, v in source.items()
                    if k.endswith('.weight') and v.dim() == 4})
        backbone.load_state_dict(raw, strict=True)
        diff = max((o.double() - r).abs().max().item()
                   for o, r in zip(features(backbone, image), refs))
        assert diff > 1e-3


def test_bcn_ws_loads_into_mmseg_resnet(image):
    source = make_source('bcn-ws', 50, seed=2)
    result = convert_resnet(source)          # auto-detected
    assert result.meta['source'] == 'bcn-ws'
    backbone = build_backbone('bcn-ws', 50, scope='mmseg')
    backbone.load_state_dict(result.state_dict, strict=True)
    assert_matches_reference(backbone, image,
                          reference_features(source, image, 'bcn-ws'))


@pytest.mark.parametrize('eps_mode', ['var', 'std'])
def test_gn_ws_to_mmdet_resnet(eps_mode, image):
    source = make_source('gn-ws', 50, seed=3)
    result = convert_gn_ws_resnet(source, eps_mode=eps_mode,
                                  num_groups=GROUPS)
    assert result.dropped == ['fc.weight', 'fc.bias']
    sd = result.state_dict
    assert set(sd) == set(source) - {'fc.weight', 'fc.bias'}
    if eps_mode == 'std':
        # ConvWS semantics kept: the weights are the source's, bit for bit
        assert all(torch.equal(sd[k], v) for k, v in sd.items())
        assert result.meta['norm_scheme'] == dict(
            name='gn-ws', norm=dict(num_groups=GROUPS),
            conv=dict(eps_mode='std'))
    else:
        assert not torch.equal(sd['conv1.weight'], source['conv1.weight'])
        assert result.meta['norm_scheme'] == dict(
            name='gn-ws', norm=dict(num_groups=GROUPS))
    backbone = build_backbone('gn-ws', 50, eps_mode)
    assert backbone.norm1_name == 'gn1'
    backbone.load_state_dict(sd, strict=True)
    assert_matches_reference(backbone, image,
                          reference_features(source, image, 'gn-ws'))


@pytest.mark.parametrize('source', ['var', 'var-unbiased', 'std'])
@pytest.mark.parametrize('target', ['var', 'std'])
def test_ws_reparametrize_is_exact(source, target):
    gen = torch.Generator().manual_seed(4)
    scale = 10 ** (torch.rand(32, 1, 1, 1, generator=gen) * 4 - 4)
    w = torch.randn(32, 16, 3, 3, generator=gen) * scale + 0.3 * scale
    w[0] = 0.25                          # a constant filter
    if source == 'var' and target == 'std':
        # filters whose standardized unbiased std is >= 1 cannot be had
        with pytest.raises(ValueError, match="eps_mode='var'"):
            ws_reparametrize(w, source, target)
        return
    out = ws_reparametrize(w, source, target)
    assert out.dtype == w.dtype
    got = standardize_weight(out.double(), EPS, target)
    torch.testing.assert_close(got, ws_reference(w.double(), source),
                               atol=1e-6, rtol=1e-6)


def test_wrapped_module_prefixed_checkpoint(tmp_path):
    source = make_source('bcn-ws', 18, seed=5)
    path = tmp_path / 'model_best.pth.tar'
    torch.save({'epoch': 90, 'arch': 'l_resnet18', 'best_acc': 70.5,
                'state_dict': OrderedDict(
                    ('module.' + k, v) for k, v in source.items()),
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]}},
               path)
    wrapped = convert_bcn_ws_resnet(str(path))
    plain = convert_bcn_ws_resnet(source)
    assert list(wrapped.state_dict) == list(plain.state_dict)
    assert all(torch.equal(wrapped.state_dict[k], v)
               for k, v in plain.state_dict.items())
    prefixed = convert_bcn_ws_resnet(source, prefix='backbone.')
    assert list(prefixed.state_dict) == [
        'backbone.' + k for k in plain.state_dict]
    # older checkpoints without num_batches_tracked: filled so that no
    # micro-batch warm-up replaces the ImageNet estimates; no update_rate
    old = OrderedDict((k, v) for k, v in source.items()
                      if not k.endswith('num_batches_tracked'))
    result = convert_bcn_ws_resnet(old, update_rate=None)
    assert len(result.meta['filled_keys']) == 20   # the norms of ResNet-18
    assert int(result.state_dict['bcn1.num_batches_tracked']) == 100
    assert not any(k.endswith('update_rate') for k in result.state_dict)


def test_unrecognized_layouts_are_clear_errors(tmp_path):
    bcn = make_source('bcn-ws', 18)
    gn = make_source('gn-ws', 18)
    # a BatchNorm ResNet (torchvision)
    tv = OrderedDict(
        (k.replace('.pbn', ''), v) for k, v in bcn.items()
        if not (k.endswith(('bn1.weight', 'bn1.bias')) and v.dim() == 3))
    with pytest.raises(LayoutError) as err:
        convert_bcn_ws_resnet(tv)
    msg = str(err.value)
    assert "'bn1.pbn.running_mean'" in msg and 'missing' in msg
    assert "'conv1.weight'" in msg and 'found keys' in msg
    assert 'BatchNorm ResNet' in msg
    # the other source's layout: the message names the right converter
    with pytest.raises(LayoutError, match="source='gn-ws'"):
        convert_bcn_ws_resnet(gn)
    with pytest.raises(LayoutError, match="source='bcn-ws'"):
        convert_gn_ws_resnet(bcn)
    # nothing like a ResNet, auto-detected
    with pytest.raises(LayoutError, match='unrecognized checkpoint layout'):
        convert_resnet({'encoder.weight': torch.zeros(3)})
    with pytest.raises(LayoutError, match='not tensors'):
        convert_resnet({'meta': {}, 'epoch': 3})
    # an unexpected key, a missing part
    extra = OrderedDict(bcn, **{'layer1.0.se.fc.weight': torch.zeros(2)})
    with pytest.raises(LayoutError, match=r"'layer1\.0\.se\.fc\.weight'"):
        convert_bcn_ws_resnet(extra)
    partial = OrderedDict(bcn)
    del partial['layer2.0.bn2.pbn.running_var']
    with pytest.raises(LayoutError,
                       match=r'layer2\.0\.bn2\.pbn\.running_var'):
        convert_bcn_ws_resnet(partial)
    # the command line reports it and fails
    src = tmp_path / 'gn.pth'
    torch.save(gn, src)
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters',
                                  'bcn_ws_resnet_to_mmdet.py'),
         str(src), str(tmp_path / 'out.pth')], capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 1
    assert 'error: not the BCN authors' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_command_lines(tmp_path, image):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    bcn = make_source('bcn-ws', 50, seed=6)
    gn = make_source('gn-ws', 50, seed=7)
    torch.save({'state_dict': OrderedDict(
        ('module.' + k, v) for k, v in bcn.items())}, tmp_path / 'bcn.pth')
    torch.save(gn, tmp_path / 'gn.pth')
    runs = {
        'bcn': ['bcn_ws_resnet_to_mmdet.py', 'bcn.pth', 'bcn_det.pth',
                '--prefix', 'backbone.'],
        'gn': ['gn_ws_resnet_to_mmdet.py', 'gn.pth', 'gn_det.pth',
               '--num-groups', str(GROUPS)],
    }
    procs = [subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', script),
         str(tmp_path / src), str(tmp_path / dst), *opts],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for script, src, dst, *opts in runs.values()]    # both at once
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "dropped 2 keys: ['fc.weight', 'fc.bias']" in stdout
        assert "init_cfg = dict(type='Pretrained'" in stdout or \
            'load_from = ' in stdout

    # the detector-level checkpoint: full keys, for load_from
    ckpt = torch.load(tmp_path / 'bcn_det.pth', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['dropped_keys'] == ['fc.weight', 'fc.bias']
    backbone = build_backbone('bcn-ws', 50)
    backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()},
        strict=True)
    assert_matches_reference(backbone, image,
                          reference_features(bcn, image, 'bcn-ws'))

    # the backbone-level checkpoint through mmengine's Pretrained init
    backbone = build_backbone(
        'gn-ws', 50, init_cfg=dict(type='Pretrained',
                                   checkpoint=str(tmp_path / 'gn_det.pth')))
    backbone.init_weights()
    assert_matches_reference(backbone, image,
                          reference_features(gn, image, 'gn-ws'))
