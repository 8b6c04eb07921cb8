"""The papers' protocol as configs: the backbone pretraining leaves
(configs/pretrain/: ImageNet and the built-in classification task) say
what they build, and their checkpoints load into the fine-tuning configs'
backbones key for key (mmengine's Pretrained with prefix='backbone.', as
mmdet loads mmpretrain checkpoints)."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmbcn  # noqa: F401
from mmbcn.schemes import SCHEMES
from repo import REPO

PRETRAIN = sorted(osp.basename(p) for p in glob.glob(
    osp.join(REPO, 'configs', 'pretrain', '*.py')))
FINETUNE = sorted(osp.basename(p) for p in glob.glob(
    osp.join(REPO, 'configs', 'shapes', 'finetune', '*.py')))
SCHEMES_PRETRAINED = ('bn', 'gn', 'gn-ws', 'bcn', 'bcn-ws')


def load(*parts):
    return Config.fromfile(osp.join(REPO, 'configs', *parts))


def build(cfg):
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS.build(cfg.model)


def test_every_scheme_and_batch_has_its_leaves():
    expected = set()
    for arch in ('resnet50', 'resnet101'):
        for scheme in SCHEMES_PRETRAINED:
            for batch in ('8xb32', '8xb1'):
                expected.add(f'{arch}_{scheme}_{batch}-100e_in1k.py')
    for arch in ('resnet18', 'resnet18-v1c'):
        for scheme in SCHEMES_PRETRAINED:
            expected.add(f'{arch}_{scheme}_1xb32-300i_shapes-cls.py')
        expected.add(f'{arch}_bn_1xb32-mb1-300i_shapes-cls.py')
    assert set(PRETRAIN) == expected
    assert len(FINETUNE) == 12


@pytest.mark.parametrize('name', PRETRAIN)
def test_pretrain_config_says_what_it_builds(name):
    cfg = load('pretrain', name)
    scheme = re.match(r'[\w-]+?_([\w-]+?)_\d+xb', name)[1]
    layers = SCHEMES[scheme]
    assert cfg.norm_scheme == scheme
    backbone = cfg.model.backbone
    assert backbone.norm_cfg == layers.norm_cfg
    assert backbone.get('conv_cfg') == layers.conv_cfg
    assert cfg.model.type == 'BackboneClassifier'
    assert cfg.optim_wrapper.constructor == 'NormAwareOptimWrapperConstructor'
    assert cfg.default_scope == ('mmseg' if '-v1c' in name else 'mmdet')
    if '-v1c' in name:  # the shapes DeepLabV3's deep stem
        assert backbone.stem_channels == 64
    assert backbone.type == ('ResNetV1c' if '-v1c' in name else 'ResNet')
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)', name).groups())
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu
    if name.endswith('in1k.py'):  # lr 0.1 per 256 images, scaled linearly
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
            0.1 * gpus * per_gpu / 256)
        assert cfg.train_cfg.max_epochs == 100
        assert cfg.model.num_classes == 1000
    else:
        assert cfg.model.num_classes == 4
        assert cfg.train_dataloader.dataset.data_root == 'data/shapes_cls'
    assert cfg.model.get('micro_batch') == (1 if '-mb1-' in name else None)


@pytest.mark.parametrize('name', FINETUNE)
def test_finetune_config_loads_its_pretraining(name):
    cfg = load('shapes', 'finetune', name)
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    stem = osp.basename(osp.dirname(init.checkpoint))
    arch = 'resnet18-v1c' if name.startswith('deeplabv3') else 'resnet18'
    batch = '1xb32-mb1-300i' if '-mb1' in name else '1xb32-300i'
    assert stem == f'{arch}_{cfg.norm_scheme}_{batch}_shapes-cls_seed0'
    assert osp.isfile(osp.join(REPO, 'configs', 'pretrain',
                               stem[:-len('_seed0')] + '.py'))
    layers = SCHEMES[cfg.norm_scheme]
    assert cfg.model.backbone.norm_cfg == layers.norm_cfg


def transfer(pretrain_cfg, finetune_cfg, tmp_path):
    """(classifier, fine-tuning model initialized from its checkpoint)."""
    torch.manual_seed(0)
    classifier = build(pretrain_cfg)
    classifier.init_weights()
    with torch.no_grad():  # every tensor distinct from any init
        for value in classifier.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5)
    path = str(tmp_path / 'pretrained.pth')
    torch.save(dict(state_dict=classifier.state_dict(), meta={}), path)
    finetune_cfg.model.backbone.init_cfg = dict(
        type='Pretrained', prefix='backbone.', checkpoint=path)
    model = build(finetune_cfg)
    model.init_weights()
    return classifier, model


def assert_backbone_loaded(classifier, model):
    source = {k[len('backbone.'):]: v for k, v in
              classifier.state_dict().items() if k.startswith('backbone.')}
    target = model.backbone.state_dict()
    assert set(target) == set(source)
    for key, value in target.items():
        torch.testing.assert_close(value, source[key], rtol=0, atol=0,
                                   msg=key)


@pytest.mark.parametrize('name', FINETUNE)
def test_shapes_checkpoint_loads_key_for_key(name, tmp_path):
    finetune = load('shapes', 'finetune', name)
    pretrain = osp.basename(osp.dirname(
        finetune.model.backbone.init_cfg.checkpoint))[:-len('_seed0')]
    classifier, model = transfer(load('pretrain', pretrain + '.py'),
                                 finetune, tmp_path)
    assert_backbone_loaded(classifier, model)


@pytest.mark.parametrize('pretrain,finetune', [
    ('resnet50_bcn-ws_8xb32-100e_in1k.py',
     'mask-rcnn_r50-in1k_fpn_bcn-ws-all_2x_coco.py'),
    ('resnet101_gn_8xb1-100e_in1k.py',
     'mask-rcnn_r101-in1k_fpn_gn-all_2x_coco.py'),
    ('resnet101_gn-ws_8xb32-100e_in1k.py',
     'deeplabv3_r101-in1k-d8_gn-ws_4xb4-33k_voc12aug-513x513.py'),
    ('resnet101_bn_8xb32-100e_in1k.py',
     'deeplabv3_r101-in1k-d8_bn_4xb2-80k_cityscapes-512x1024.py'),
])
def test_imagenet_checkpoint_loads_into_the_coco_voc_configs(
        pretrain, finetune, tmp_path):
    classifier, model = transfer(load('pretrain', pretrain),
                                 load('finetune', finetune), tmp_path)
    assert_backbone_loaded(classifier, model)


SHAPES_PRETRAIN = [n for n in PRETRAIN if n.endswith('shapes-cls.py')]


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    from mmbcn.datasets.shapes_cls import generate_shapes_cls
    root = tmp_path_factory.mktemp('shapes_cls')
    # 64 px as the task's default: BN of single images (the micro-batch
    # configs) needs more than the 1x1 final map of 32 px images
    generate_shapes_cls(root, num_train=4, num_val=4, img_size=64,
                        progress=False)
    return str(root)


@pytest.mark.parametrize('name', SHAPES_PRETRAIN)
def test_shapes_pretraining_trains_and_saves(name, cls_root, tmp_path):
    """Each built-in pretraining config trains (mmbcn.apis, as
    tools/train.py) and saves its last checkpoint."""
    from mmbcn import apis
    options = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
               'train_dataloader.batch_size': 4}
    for split in ('train', 'val', 'test'):
        options.update({f'{split}_dataloader.dataset.data_root': cls_root,
                        f'{split}_dataloader.num_workers': 0,
                        f'{split}_dataloader.persistent_workers': False})
    cfg = apis.load_config(osp.join(REPO, 'configs', 'pretrain', name),
                           cfg_options=options, work_dir=str(tmp_path))
    torch.set_num_threads(1)
    runner = apis.train(cfg)
    assert runner.iter == 2
    assert 'val/cls/top1' in runner.message_hub.log_scalars
    assert osp.isfile(osp.join(str(tmp_path), 'iter_2.pth'))
