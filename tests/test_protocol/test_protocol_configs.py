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
    for scheme in SCHEMES_PRETRAINED:  # one ResNet-18 for both models
        expected.add(f'resnet18_{scheme}_1xb32-300i_shapes-cls.py')
    expected.add('resnet18_bn_1xb32-mb1-300i_shapes-cls.py')
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
    assert cfg.default_scope == 'mmdet'
    assert backbone.type == 'ResNet'
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
    batch = '1xb32-mb1-300i' if '-mb1' in name else '1xb32-300i'
    assert stem == f'resnet18_{cfg.norm_scheme}_{batch}_shapes-cls_seed0'
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


@pytest.mark.parametrize('name', [
    n for n in FINETUNE if n.startswith('deeplabv3')][:1])
def test_finetuned_deeplabv3_differs_from_scratch_only_in_the_stem(name):
    """The fine-tuned shapes DeepLabV3 takes the shared ResNet-18 (7x7 stem
    of 32 channels); apart from the stem and the first block's input (32
    channels, not 64, so no projection shortcut) every tensor has the
    from-scratch model's shape, and the output stride stays 8."""
    finetune = load('shapes', 'finetune', name)
    finetune.model.backbone.init_cfg = None
    scratch = load('shapes', name.replace('-cls', '').replace(
        '200i', '1000i'))
    tuned, fresh = build(finetune), build(scratch)
    shapes = {m: {k: v.shape for k, v in model.state_dict().items()}
              for m, model in (('tuned', tuned), ('fresh', fresh))}
    assert shapes['tuned']['backbone.conv1.weight'] == (32, 3, 7, 7)
    assert 'backbone.stem.0.weight' in shapes['fresh']

    def body(model_shapes):
        return {k: v for k, v in model_shapes.items()
                if not (k.startswith('backbone.') and not k.startswith(
                    'backbone.layer')) and not k.startswith((
                        'backbone.layer1.0.conv1.',
                        'backbone.layer1.0.downsample.'))}

    assert body(shapes['tuned']) == body(shapes['fresh'])
    tuned.eval()
    with torch.no_grad():
        features = tuned.backbone(torch.zeros(1, 3, 128, 128))
    assert features[-1].shape[-2:] == (16, 16)
