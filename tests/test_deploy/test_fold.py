"""Folding WS / BCN into standard layers, saving and exporting the result."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.config import Config

from mmbcn import BCN, WSConv2d
from mmbcn.apis import build_model
from mmbcn.compat import CheckpointError
from mmbcn.deploy import (fold_bcn, fold_norm, fold_ws, folded_config,
                          load_folded, max_output_error, save_folded)
from mmbcn.deploy.checkpoint import state_dict_mismatch
from mmbcn.schemes import apply_scheme
from repo import REPO

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
DEEPLABV3 = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py'
# DeepLabV3 (ResNetV1c-50-D8 deep stem, ASPP, FCN auxiliary head) at 1/4
# width for speed.
DEEPLABV3_NARROW = """
model = dict(
    pretrained=None,
    backbone=dict(stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=512, channels=64, num_classes=5),
    auxiliary_head=dict(in_channels=256, channels=32, num_classes=5))
"""
ROOT = REPO
TOL = 1e-4


def config(tmp_path, base, body='', name='cfg.py'):
    # Config.fromfile cannot open an mmdet:: path directly; inherit it.
    path = tmp_path / name
    path.write_text(f"_base_ = '{base}'\n{body}")
    return Config.fromfile(str(path))


def bcn_ws(cfg, num_groups, affine):
    scheme = dict(name='bcn-ws', norm=dict(num_groups=num_groups,
                                           affine=affine))
    apply_scheme(cfg.model, scheme, cfg.default_scope)
    cfg.norm_scheme = scheme
    return cfg


@torch.no_grad()
def randomize(model, seed=0):
    """Non-trivial BCN estimates and affine parameters, and conv biases."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, BCN):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.3, 3, generator=g)
            m.batch_weight.uniform_(0.5, 1.5, generator=g)
            m.batch_bias.normal_(0, 0.5, generator=g)
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0, 0.5, generator=g)
            m.num_batches_tracked.fill_(100)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def count(model, cls):
    return sum(isinstance(m, cls) for m in model.modules())


def depthwise_affines(model):
    """How many BCN became (depthwise 1x1 conv, GroupNorm)."""
    return sum(isinstance(m, nn.Sequential) and len(m) == 2
               and isinstance(m[0], nn.Conv2d) and m[0].groups > 1
               and m[0].groups == m[0].out_channels
               and isinstance(m[1], nn.GroupNorm) for m in model.modules())


def check_folded(model, folded):
    assert count(folded, WSConv2d) == 0 and count(folded, BCN) == 0
    assert count(folded, nn.GroupNorm) == count(model, BCN)
    # the original is untouched
    assert count(model, BCN) > 0 and all(not m.training
                                         for m in model.modules())


def load_tool(name):
    path = osp.join(ROOT, 'tools', 'deployment', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_fold_rules(affine):
    torch.manual_seed(0)
    shared = nn.Conv2d(8, 8, 3, padding=1)
    model = nn.Sequential(
        # WS conv with a bias -> BCN: folded into the conv
        nn.Sequential(WSConv2d(3, 8, 3, padding=1, bias=True),
                      BCN(8, 4, affine=affine), nn.ReLU()),
        # norm before conv: the BCN has no conv before it
        ConvModule(8, 16, 3, padding=1, conv_cfg=dict(type='WSConv2d'),
                   norm_cfg=dict(type='BCN', num_groups=4, affine=affine),
                   order=('norm', 'conv', 'act')),
        # conv -> BCN: folded (the conv gains a bias)
        ConvModule(16, 8, 1, conv_cfg=dict(type='WSConv2d'),
                   norm_cfg=dict(type='BCN', num_groups=2, affine=affine)),
        # a conv used twice: its output feeds two norms, not folded
        nn.Sequential(shared, BCN(8, 2, affine=affine)),
        nn.Sequential(shared, BCN(8, 4, affine=affine)),
        # a BCN after a non-conv layer (large-batch mode: the same in eval)
        nn.MaxPool2d(2), BCN(8, 8, mode='large', affine=affine))
    randomize(model)
    x = torch.randn(2, 3, 12, 12)
    folded = fold_norm(model)
    check_folded(model, folded)
    assert depthwise_affines(folded) == 4
    assert isinstance(folded[2].conv, nn.Conv2d) and \
        folded[2].conv.bias is not None
    assert folded[2].norm_name == 'gn' and \
        isinstance(folded[2].norm, nn.GroupNorm)
    assert max_output_error(model, folded, x) < TOL
    assert folded(x).shape == model(x).shape


def test_fold_ws_only_and_bcn_after_ws():
    model = randomize(nn.Sequential(WSConv2d(3, 8, 3, eps_mode='std'),
                                    BCN(8, 4)))
    x = torch.randn(1, 3, 9, 9)
    ws = fold_ws(model)
    assert type(ws[0]) is nn.Conv2d and isinstance(ws[1], BCN)
    assert max_output_error(model, ws, x) < TOL
    # fold_bcn alone does not fold into a WS conv (WS would re-standardize)
    bcn = fold_bcn(model)
    assert isinstance(bcn[0], WSConv2d) and depthwise_affines(bcn) == 1
    assert max_output_error(model, bcn, x) < TOL
    # in place: the same object, folded
    assert fold_norm(model, inplace=True) is model
    assert count(model, BCN) == 0 and count(model, WSConv2d) == 0


def test_training_mode_is_an_error():
    model = nn.Sequential(WSConv2d(3, 8, 3), BCN(8, 4))
    for fold in (fold_norm, fold_ws, fold_bcn):
        with pytest.raises(ValueError, match=r'\.eval\(\)'):
            fold(model)
    model.eval()
    model[1].train()  # a BCN left in training mode updates its estimates
    with pytest.raises(ValueError, match='training mode'):
        fold_norm(model)


# ---------------------------------------------------------------- mmdet


def mask_rcnn(tmp_path, depth, affine):
    body = f'model = dict(backbone=dict(depth={depth}, init_cfg=None))\n'
    if depth == 18:
        body += 'model.update(neck=dict(in_channels=[64, 128, 256, 512]))\n'
    cfg = bcn_ws(config(tmp_path, MASK_RCNN, body), 32, affine)
    # few proposals (speed), every RoI scored: the predictions of random
    # weights are compared
    cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=20)
    torch.manual_seed(0)
    return cfg, randomize(build_model(cfg))


@torch.no_grad()
def test_mask_rcnn_r18_predict(tmp_path):
    from mmdet.structures import DetDataSample
    _, model = mask_rcnn(tmp_path, 18, 'group')
    folded = fold_norm(model)
    check_folded(model, folded)
    assert depthwise_affines(folded) == 0  # every BCN follows its conv
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, 72, 88), dtype=torch.uint8)
    assert max_output_error(model, folded, torch.randn(1, 3, 64, 96)) < TOL

    def predict(m):
        sample = DetDataSample(metainfo=dict(
            img_shape=(72, 88), ori_shape=(72, 88), scale_factor=(1., 1.)))
        return m.test_step(dict(inputs=[image],
                                data_samples=[sample]))[0].pred_instances

    ref, got = predict(model), predict(folded)
    assert len(ref) == 20 and len(got) == len(ref)
    torch.testing.assert_close(got.scores, ref.scores, atol=TOL, rtol=0)
    torch.testing.assert_close(got.bboxes, ref.bboxes, atol=TOL, rtol=TOL)
    assert torch.equal(got.labels, ref.labels)


def test_mask_rcnn_r50_fpn_onnx(tmp_path):
    from mmbcn.deploy.onnx import export_onnx, onnxruntime_max_error
    cfg, model = mask_rcnn(tmp_path, 50, 'channel')
    folded = fold_norm(model)
    check_folded(model, folded)
    assert depthwise_affines(folded) == 0  # every BCN follows its conv
    x = torch.randn(1, 3, 64, 64)
    assert max_output_error(model, folded, x) < TOL
    # the network of the plain GN config, but for the biases folding added
    # (norms renamed bcnK -> gnK as build_norm_layer names a GN)
    assert folded.backbone.norm1_name == 'gn1'
    plain = build_model(folded_config(cfg))
    mismatch = state_dict_mismatch(folded, plain)
    assert not mismatch['missing'] and not mismatch['shape']
    assert len(mismatch['unexpected']) == count(model, BCN)
    assert all(k.endswith('conv.bias') or k.endswith('conv1.bias') or
               k.endswith('conv2.bias') or k.endswith('conv3.bias') or
               k.endswith('downsample.0.bias')
               for k in mismatch['unexpected'])
    pytest.importorskip('onnx')
    path = str(tmp_path / 'r50_fpn.onnx')
    names = export_onnx(folded, x, path)  # backbone + FPN: 5 levels
    assert len(names) == 5
    pytest.importorskip('onnxruntime')
    assert onnxruntime_max_error(folded, path, x) < TOL


# ---------------------------------------------------------------- mmseg


def deeplabv3(tmp_path, affine):
    cfg = bcn_ws(config(tmp_path, DEEPLABV3, DEEPLABV3_NARROW), 8, affine)
    torch.manual_seed(0)
    return cfg, randomize(build_model(cfg))


@pytest.mark.parametrize('affine', ['group', 'channel'])
def test_deeplabv3_logits(tmp_path, affine):
    _, model = deeplabv3(tmp_path, affine)
    folded = fold_norm(model)
    check_folded(model, folded)
    assert depthwise_affines(folded) == 0
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        ref = model._forward(x)
    assert ref.shape == (2, 5, 6, 8)
    assert ref.abs().max() > 0.1
    assert max_output_error(model, folded, x) < TOL


def test_deeplabv3_tools(tmp_path, capsys):
    """fold_norm.py and export_onnx.py on a trained-like checkpoint."""
    cfg, model = deeplabv3(tmp_path, 'group')
    ckpt = str(tmp_path / 'trained.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    cfg_file = str(tmp_path / 'deeplab_bcn.py')
    cfg.dump(cfg_file)  # the layers written out, norm_scheme as a label
    out = str(tmp_path / 'folded.pth')
    rc = load_tool('fold_norm').main(
        [cfg_file, ckpt, out, '--verify-shape', '32', '32'])
    assert rc == 0, capsys.readouterr()
    assert 'format: module' in capsys.readouterr().out
    # BCN folded: biases the config cannot express, the module is pickled
    # with no reference to mmbcn
    assert not [g for g in
                torch.serialization.get_unsafe_globals_in_checkpoint(out)
                if g.startswith('mmbcn')]
    dump = Config.fromfile(str(tmp_path / 'folded.py'))
    assert dump.folded.format == 'module' and 'norm_scheme' not in dump
    assert dump.model.backbone.norm_cfg == dict(
        type='GN', num_groups=8, eps=1e-5, requires_grad=True)
    assert dump.model.backbone.conv_cfg is None
    with pytest.raises(CheckpointError, match='refused to load'):
        load_folded(out)  # a pickled module: only with trust
    reloaded = load_folded(out, trust=True)
    x = torch.randn(1, 3, 40, 40)
    assert max_output_error(model, reloaded, x) < TOL

    pytest.importorskip('onnx')
    onnx_file = str(tmp_path / 'deeplabv3.onnx')
    rc = load_tool('export_onnx').main(
        [cfg_file, ckpt, onnx_file, '--shape', '48', '48'])
    printed = capsys.readouterr().out
    assert rc == 0 and 'onnx.checker: passed' in printed, printed
    if importlib.util.find_spec('onnxruntime') is not None:
        assert 'max |onnxruntime - torch|' in printed
    # the folded file given where the trained checkpoint belongs
    for tool, args in (('export_onnx', [onnx_file]), ('fold_norm', [out])):
        rc = load_tool(tool).main([cfg_file, out, *args])
        err = capsys.readouterr().err
        assert rc == 1
        assert f"{out} is already folded (written by fold_norm.py, format " \
            f"'module'); {tool}.py takes the unfolded checkpoint" in err


def test_tools_check_the_documented_tolerance():
    from mmbcn.deploy.checkpoint import TOLERANCE
    for tool in ('fold_norm', 'export_onnx'):
        module = load_tool(tool)
        args = module.parse_args(['c.py', 'a.pth', 'b.out'])
        assert args.tolerance == TOLERANCE == 1e-3


def test_gn_ws_saves_a_plain_checkpoint(tmp_path):
    """Only WS folded: the plain GN config rebuilds the model exactly."""
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    cfg = config(tmp_path, DEEPLABV3, DEEPLABV3_NARROW)
    apply_scheme(cfg.model, dict(name='gn-ws', norm=dict(num_groups=8)),
                 'mmseg')
    torch.manual_seed(0)
    model = build_model(cfg)
    folded = fold_norm(model)
    out = str(tmp_path / 'gn.pth')
    info = save_folded(folded, cfg, out)
    assert info['format'] == 'state_dict'
    from mmbcn.deploy.checkpoint import folded_format
    assert folded_format(out) == 'state_dict'  # export / fold refuse it
    # plain mmseg: build the dumped config, load strictly
    plain = MODELS.build(Config.fromfile(info['config']).model).eval()
    load_checkpoint(plain, out, strict=True, logger='silent')
    assert count(plain, WSConv2d) == 0
    assert max_output_error(model, plain, torch.randn(1, 3, 32, 32)) < TOL
