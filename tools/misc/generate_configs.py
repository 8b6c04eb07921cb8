"""Write the leaf configs of configs/mask_rcnn, configs/deeplabv3 and
configs/shapes: one file per (model, schedule, batch, dataset) x scheme.

Every leaf inherits one of the shared bases in ``configs/_base_/`` (which
inherit mmdet's / mmseg's own configs) and writes out the layers of its
normalization scheme, as mmdet's ``configs/gn+ws/`` do: ``conv_cfg``,
``norm_cfg`` and the ``model`` keys they go into (and, for "-all" schemes,
the four-conv box head). Those lines are computed here from the one scheme
table (:data:`mmbcn.schemes.SCHEMES`) applied to the base's model
(:func:`mmbcn.schemes.scheme_config_edits`: also the optimizer
constructor every scheme uses), so nothing is repeated by hand and any
OpenMMLab tool (``Config.fromfile`` + ``MODELS.build``) builds what the leaf
says. A scheme that needs hooks (Batch Renormalization's schedule, the conv
links of Cross-Iteration BN) gets them in ``custom_hooks``, after the base's.
``norm_scheme`` names the scheme, as a label for the result tables.
For 1 image per GPU a leaf also sets the batch size, the linearly scaled
learning rate and ``auto_scale_lr``.

Usage::

    python tools/misc/generate_configs.py          # (re)write the leaves
    python tools/misc/generate_configs.py --check  # exit 1 if any is stale

The output is deterministic for the installed mmdet / mmseg (whose base
configs it reads); the hand-written bases are not touched. Names follow
mmdet / mmseg::

    mask-rcnn_r50_fpn_bcn-ws-all_2x_coco.py        (8 GPUs x 2 images)
    mask-rcnn_r101_fpn_bcn-ws-all_8xb1-2x_coco.py  (8 GPUs x 1 image)
    mask-rcnn_r50_fpn_bn_1x_coco.py                (bn / syncbn: backbone only)
    deeplabv3_r50-d8_bcn-ws_4xb2-20k_voc12aug-512x512.py
    mask-rcnn_r18_fpn_bcn-ws-all_1xb2-300i_shapes.py
"""
import argparse
import functools
import glob
import os
import os.path as osp
import sys
import textwrap

from mmbcn.schemes import SCHEMES, scheme_config_edits, with_scheme_hooks

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '../..'))
BASE_DIR = osp.join(REPO_ROOT, 'configs', '_base_')
WIDTH = 79

#: The schemes the experiments compare, in this order.
SCHEME_NAMES = ('bn', 'syncbn', 'gn', 'gn-ws', 'bcn', 'bcn-ws')
#: Related schemes from the literature: small shapes configs only.
RELATED_SCHEME_NAMES = ('sws', 'evonorm-b0', 'evonorm-s0', 'frn', 'brn',
                        'mabn', 'cbn')

#: How each scheme is described in the leaf's header comment.
LABELS = {
    'bn': 'BN (per-GPU statistics)',
    'syncbn': 'SyncBN (statistics across GPUs)',
    'gn': 'GN',
    'gn-ws': 'GN + WS',
    'bcn': 'BCN',
    'bcn-ws': 'BCN + WS',
    'sws': 'Scaled WS without normalization (per-channel affine)',
    'evonorm-b0': 'EvoNorm-B0',
    'evonorm-s0': 'EvoNorm-S0',
    'frn': 'FRN (then the blocks\' ReLU, TLU off)',
    'brn': 'Batch Renormalization',
    'mabn': 'MABN + weight centralization',
    'cbn': 'Cross-Iteration BN',
    'bcn-ws-large': 'BCN (large-batch mode, statistics synchronized across '
                    'GPUs) + WS',
}


def det_tag(scheme):
    """mmdet's name for a scheme: "-all" when it normalizes the heads."""
    return SCHEMES[scheme].det_tag


def seg_where(scheme):
    if not SCHEMES[scheme].backbone:
        return ('in the ASPP head and auxiliary head, the backbone\'s norms '
                'as the base writes them')
    return 'in the backbone, ASPP head and auxiliary head'


def det_where(scheme):
    if SCHEMES[scheme].normalize_all and not SCHEMES[scheme].backbone:
        return ('in the FPN and RoI box / mask heads, the backbone\'s norms '
                'as the base writes them')
    if SCHEMES[scheme].normalize_all:
        return 'in the backbone, FPN and RoI box / mask heads'
    return 'in the backbone only (mmdet\'s usual Mask R-CNN)'


def images(n):
    return f'{n} image' + ('s' if n > 1 else '')


class Ref(str):
    """A name the leaf defines (``norm_cfg``), written without quotes."""

    def __repr__(self):
        return str(self)


def render(value, column=0, indent=0):
    """``value`` as config source, starting at ``column``; dicts that do not
    fit in :data:`WIDTH` get one key per line, indented by 4."""
    if isinstance(value, dict):
        items = [f'{k}={render(v, indent + 4 + len(k) + 1, indent + 4)}'
                 for k, v in value.items()]
        opening, closing = 'dict(', ')'
    elif isinstance(value, (list, tuple)):
        items = [render(v, indent + 4, indent + 4) for v in value]
        opening, closing = ('[', ']') if isinstance(value, list) else \
            ('(', ',)' if len(value) == 1 else ')')
    else:
        return repr(value)
    one_line = opening + ', '.join(items) + closing
    if '\n' not in one_line and column + len(one_line) <= WIDTH - 1:
        return one_line
    pad = ' ' * (indent + 4)
    return opening + '\n' + ',\n'.join(pad + i for i in items) + closing


def _refer(node, refs):
    """``node`` with the values of ``refs`` ({name: value}) replaced by
    references to the names."""
    for name, value in refs.items():
        if value is not None and node == value:
            return Ref(name)
    if isinstance(node, dict):
        return {k: _refer(v, refs) for k, v in node.items()}
    return node


@functools.lru_cache(maxsize=None)
def base_model(base):
    """(scope, model dict) of a base in configs/_base_/ (read once)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(BASE_DIR, base))
    hooks = [h.to_dict() if hasattr(h, 'to_dict') else h
             for h in cfg.get('custom_hooks') or []]
    return cfg.default_scope, cfg.model.to_dict(), hooks


def scheme_lines(base, scheme, model_extra=None, optim_extra=None):
    """The lines of a leaf that write out ``scheme``'s layers on ``base``
    (and the other ``model`` keys of ``model_extra``), its optimizer
    wrapper (with the keys of ``optim_extra``) and the hooks it needs."""
    scope, model, base_hooks = base_model(base)
    layers = SCHEMES[scheme]
    refs = {'conv_cfg': layers.conv_cfg, 'norm_cfg': layers.norm_cfg}
    lines = [f"norm_scheme = '{scheme}'  # label only: the layers are below"]
    for name, value in refs.items():
        if value is not None:
            lines.append(f'{name} = {render(value, len(name) + 3)}')
    config_edits = scheme_config_edits(model, scheme, scope)
    edits = _refer(config_edits['model'], refs)
    for key, value in (model_extra or {}).items():
        if isinstance(value, dict):
            edits.setdefault(key, {}).update(value)
        else:
            edits[key] = value
    lines.append(f'model = {render(edits, 8)}')
    lines.append('# paramwise_cfg treats mmbcn\'s norms as norms (the same '
                 'for every scheme)')
    optim = {**config_edits['optim_wrapper'], **(optim_extra or {})}
    lines.append(f'optim_wrapper = {render(optim, 16)}')
    if layers.hooks:
        hooks = with_scheme_hooks(base_hooks, scheme)
        lines.append('# the base\'s hooks and those the scheme needs')
        lines.append(f'custom_hooks = {render(hooks, 15)}')
    return '\n'.join(lines) + '\n'


def comment(text):
    return textwrap.fill(text, width=WIDTH, initial_indent='# ',
                         subsequent_indent='# ') + '\n'


def leaf(header, base, scheme, extra='', model_extra=None, optim_extra=None):
    about = (f'{LABELS[scheme]}: the layers of '
             f'mmbcn.schemes.SCHEMES[{scheme!r}]')
    return (comment(header) + f"_base_ = '../_base_/{base}'\n" +
            comment(about) +
            scheme_lines(base, scheme, model_extra, optim_extra) + extra)


def mask_rcnn_configs():
    for depth in (50, 101):
        for sched in ('1x', '2x'):
            base = f'mask-rcnn_r{depth}_fpn_scratch_{sched}_coco.py'
            # (GPUs, images per GPU); R-101 is also run at 1 image per GPU
            batches = [(8, 2)] + ([(8, 1)] if depth == 101 else [])
            for gpus, per_gpu in batches:
                for scheme in SCHEME_NAMES:
                    tag = det_tag(scheme)
                    if per_gpu == 2:  # mmdet's default, not in the name
                        name = f'mask-rcnn_r{depth}_fpn_{tag}_{sched}_coco.py'
                        extra, optim = '', None
                    else:
                        name = (f'mask-rcnn_r{depth}_fpn_{tag}_'
                                f'{gpus}xb{per_gpu}-{sched}_coco.py')
                        extra = (
                            '# 1 image per GPU: half the base\'s total batch '
                            '(16), so half its lr\n# (optim_wrapper above)\n'
                            'train_dataloader = dict(batch_size=1)\n'
                            f'auto_scale_lr = dict(base_batch_size={gpus})'
                            f'  # {gpus} GPUs x 1 image\n')
                        optim = dict(optimizer=dict(lr=0.01))
                    header = (f'Mask R-CNN R-{depth}-FPN on COCO, {sched} '
                              f'schedule, {gpus} GPUs x {images(per_gpu)}, '
                              f'from scratch; {LABELS[scheme]} '
                              f'{det_where(scheme)}.')
                    yield (osp.join('mask_rcnn', name),
                           leaf(header, base, scheme, extra,
                                optim_extra=optim))
    # the MABN paper's from-scratch table (R-50-FPN, 2x, 8 GPUs x 2 images)
    for scheme in SCRATCH_RELATED:
        header = ('Mask R-CNN R-50-FPN on COCO, 2x schedule, 8 GPUs x 2 '
                  f'images, from scratch; {LABELS[scheme]} '
                  f'{det_where(scheme)}.')
        yield (osp.join('mask_rcnn',
                        f'mask-rcnn_r50_fpn_{det_tag(scheme)}_2x_coco.py'),
               leaf(header, 'mask-rcnn_r50_fpn_scratch_2x_coco.py', scheme))


# At 1 image per GPU, BN in DeepLabV3's ASPP image-pooling branch sees a 1x1
# map: one value per channel, and torch refuses to train it.
BN_ONE_IMAGE_NOTES = {
    'bn': ('# Note: this does not train. ASPP\'s image-pooling branch gives '
           'BN one\n# value per channel at 1 image and torch raises '
           '"Expected more than 1 value\n# per channel when training": '
           'the micro-batch failure of BN, kept for\n# the comparison.\n'),
    'syncbn': ('# Note: needs 2+ GPUs. SyncBN pools the ASPP image-pooling '
               'statistics of\n# all GPUs; on one GPU mmengine reverts it to '
               'BN, which cannot train\n# 1 image (see the bn config).\n'),
}

DEEPLAB_DATASETS = (
    # (name suffix, title, schedule, base lr at 4 GPUs x 2 images)
    ('voc12aug-512x512', 'PASCAL VOC 2012 + aug (512x512 crops)', '20k',
     0.005),
    ('cityscapes-512x1024', 'Cityscapes (512x1024 crops)', '80k', 0.01),
)


def deeplabv3_configs():
    for depth in (50, 101):
        for data, title, iters, lr in DEEPLAB_DATASETS:
            base = f'deeplabv3_r{depth}-d8_scratch_4xb2-{iters}_{data}.py'
            for per_gpu in (2, 1):
                for scheme in SCHEME_NAMES:
                    name = (f'deeplabv3_r{depth}-d8_{scheme}_4xb{per_gpu}-'
                            f'{iters}_{data}.py')
                    extra, optim = '', None
                    if per_gpu == 1:
                        extra = (
                            '# 1 image per GPU: half the base\'s total batch '
                            '(8), so half its lr\n# (optim_wrapper above)\n'
                            'train_dataloader = dict(batch_size=1)\n'
                            'auto_scale_lr = dict(base_batch_size=4)'
                            '  # 4 GPUs x 1 image\n')
                        optim = dict(optimizer=dict(lr=lr / 2))
                        extra += BN_ONE_IMAGE_NOTES.get(scheme, '')
                    header = (f'DeepLabV3 R-{depth}-D8 on {title}, {iters} '
                              f'iterations, 4 GPUs x {images(per_gpu)}, from '
                              f'scratch; {LABELS[scheme]} in the backbone, '
                              'ASPP head and auxiliary head.')
                    yield (osp.join('deeplabv3', name),
                           leaf(header, base, scheme, extra,
                                optim_extra=optim))


def shapes_configs():
    for scheme in SCHEME_NAMES + RELATED_SCHEME_NAMES:
        tag = det_tag(scheme)
        yield (osp.join('shapes',
                        f'mask-rcnn_r18_fpn_{tag}_1xb2-300i_shapes.py'),
               leaf('Small Mask R-CNN on the built-in shapes data (trains on '
                    f'a CPU); {LABELS[scheme]} {det_where(scheme)}.',
                    'mask-rcnn_r18_fpn_1xb2-300i_shapes.py', scheme))
        yield (osp.join('shapes',
                        f'deeplabv3_r18-d8_{scheme}_1xb2-1000i_shapes.py'),
               leaf('Small DeepLabV3 on the built-in shapes data (trains on '
                    f'a CPU); {LABELS[scheme]} {seg_where(scheme)}.',
                    'deeplabv3_r18-d8_1xb2-1000i_shapes.py', scheme))


#: ImageNet weights trained with each scheme's layers:
#: scheme -> (ConvertedPretrained source, checkpoint for depth {d}, whose)
IMAGENET_WEIGHTS = {
    'bn': ('torchvision', 'torchvision://resnet{d}', "torchvision's BN"),
    'syncbn': ('torchvision', 'torchvision://resnet{d}', "torchvision's BN"),
    'gn': ('detectron-gn', 'open-mmlab://detectron/resnet{d}_gn',
           "Detectron's GN"),
    'gn-ws': ('gn-ws', 'open-mmlab://jhu/resnet{d}_gn_ws',
              "the WS authors' GN+WS"),
    # the BCN authors publish their ImageNet models for download, not at a
    # URL mmengine knows: save them under checkpoints/ (docs/finetune.md)
    'bcn-ws': ('bcn-ws', 'checkpoints/rn{d}-bcn-ws.pth',
               "the BCN authors' BCN+WS"),
    'bcn-ws-large': ('bcn-ws', 'checkpoints/rn{d}-bcn-ws.pth',
                     "the BCN authors' BCN+WS"),
}
#: Detectron's GN weights take BGR images, mean-subtracted, not scaled (as
#: mmdet's configs/gn/)
CAFFE_INPUT = dict(mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0],
                   bgr_to_rgb=False)
#: Related schemes with COCO configs from scratch (the MABN paper's table)
SCRATCH_RELATED = ('frn', 'brn', 'mabn')
#: The schemes fine-tuned on COCO (those with ImageNet weights of their own)
FINETUNE_DET = ('bn', 'syncbn', 'gn', 'gn-ws', 'bcn-ws')
#: ... and on VOC (the authors' DeepLabV3 also with large-batch BCN)
FINETUNE_SEG = FINETUNE_DET + ('bcn-ws-large', )


def pretrained(scheme, depth):
    """The ``model`` keys that load the scheme's ImageNet weights."""
    source, checkpoint, _ = IMAGENET_WEIGHTS[scheme]
    backbone = dict(init_cfg=dict(type='ConvertedPretrained', source=source,
                                  checkpoint=checkpoint.format(d=depth)))
    if scheme == 'syncbn':
        backbone['norm_eval'] = False  # train the synchronized statistics
    keys = dict(backbone=backbone)
    if scheme == 'gn':
        keys['data_preprocessor'] = dict(CAFFE_INPUT)
    return keys


def finetune_configs():
    for depth in (50, 101):
        for recipe, steps in (('2x', '16 and 22'), ('20-23-24e', '20 and 23')):
            base = f'mask-rcnn_r{depth}_fpn_finetune_{recipe}_coco.py'
            for scheme in FINETUNE_DET:
                whose = IMAGENET_WEIGHTS[scheme][2]
                name = (f'mask-rcnn_r{depth}-in1k_fpn_{det_tag(scheme)}_'
                        f'{recipe}_coco.py')
                header = (f'Mask R-CNN R-{depth}-FPN on COCO fine-tuned from '
                          f'{whose} ImageNet ResNet-{depth}, 24 epochs (lr '
                          f'steps at {steps}), 8 GPUs x 2 images; '
                          f'{LABELS[scheme]} {det_where(scheme)}.')
                yield (osp.join('finetune', name),
                       leaf(header, base, scheme,
                            model_extra=pretrained(scheme, depth)))
    base = 'deeplabv3_r101-d8_finetune_4xb4-33k_voc12aug-513x513.py'
    for scheme in FINETUNE_SEG:
        whose = IMAGENET_WEIGHTS[scheme][2]
        name = (f'deeplabv3_r101-in1k-d8_{scheme}_4xb4-33k_'
                'voc12aug-513x513.py')
        header = ('DeepLabV3 R-101-D8 on PASCAL VOC 2012 + aug fine-tuned '
                  f'from {whose} ImageNet ResNet-101 (the authors\' recipe: '
                  '513x513 crops, 4 GPUs x 4 images, lr 0.007, poly 0.9); '
                  f'{LABELS[scheme]} in the backbone and ASPP head.')
        yield (osp.join('finetune', name),
               leaf(header, base, scheme,
                    model_extra=pretrained(scheme, 101)))
    base = 'deeplabv3_r101-d8_finetune_4xb2-80k_cityscapes-512x1024.py'
    for scheme in FINETUNE_SEG:
        whose = IMAGENET_WEIGHTS[scheme][2]
        name = (f'deeplabv3_r101-in1k-d8_{scheme}_4xb2-80k_'
                'cityscapes-512x1024.py')
        header = ('DeepLabV3 R-101-D8 on Cityscapes fine-tuned from '
                  f'{whose} ImageNet ResNet-101 (mmseg\'s recipe: 80k '
                  'iterations, 4 GPUs x 2 images, lr 0.01, 512x1024 crops); '
                  f'{LABELS[scheme]} in the backbone, ASPP head and '
                  'auxiliary head.')
        yield (osp.join('finetune', name),
               leaf(header, base, scheme,
                    model_extra=pretrained(scheme, 101)))
    # the Cross-Iteration BN paper's Mask R-CNN: mmdet's 1x fine-tuning of
    # torchvision's BN ResNet-50 (frozen), CBN in the neck and heads
    header = ('Mask R-CNN R-50-FPN on COCO fine-tuned from torchvision\'s BN '
              'ImageNet ResNet-50 (mmdet\'s 1x: 12 epochs, frozen BN '
              'statistics), 8 GPUs x 2 images; '
              f'{LABELS["cbn"]} {det_where("cbn")}.')
    yield (osp.join('finetune', 'mask-rcnn_r50-in1k_fpn_'
                    f'{det_tag("cbn")}_1x_coco.py'),
           leaf(header, 'mask-rcnn_r50_fpn_finetune_1x_coco.py', 'cbn',
                model_extra=pretrained('bn', 50)))


# ---------------------------------------------------------------------------
# The papers' protocol: pretrain the backbone per scheme, then fine-tune
# ---------------------------------------------------------------------------
#: The schemes whose backbones are pretrained (ImageNet and the built-in
#: classification task), and fine-tuned from those on the shapes data
PRETRAIN_SCHEMES = ('bn', 'gn', 'gn-ws', 'bcn', 'bcn-ws')
#: ImageNet classifiers: (arch, base, whose backbone it is)
IMAGENET_ARCHS = (
    ('resnet50', 'resnet50_8xb32-100e_in1k.py',
     'mmdet\'s ResNet-50 (Mask R-CNN R-50-FPN)'),
    # the DeepLabV3 R-101-D8 fine-tuning configs use mmseg's ResNet with
    # the same 7x7 stem and keys: one checkpoint serves both
    ('resnet101', 'resnet101_8xb32-100e_in1k.py',
     'mmdet\'s ResNet-101 (Mask R-CNN R-101-FPN, DeepLabV3 R-101-D8)'),
)
#: The built-in classification task: (arch, base, whose backbone it is).
#: One ResNet-18 (7x7 stem) serves both shapes models, as one R-101 serves
#: Mask R-CNN and DeepLabV3 above: the shapes DeepLabV3 fine-tuning configs
#: use mmseg's ResNet with that stem and keys.
SHAPES_CLS_ARCHS = (
    ('resnet18', 'resnet18_1xb32-300i_shapes-cls.py',
     'the shapes Mask R-CNN\'s and DeepLabV3\'s ResNet-18'),
)
#: the micro-batch pretraining of the shapes backbones: images per BN batch
SHAPES_MICRO_BATCH = 1
MICRO_NOTE = (
    '# Micro-batch BN: the backbone runs on chunks of {n}, so BN\'s '
    'statistics\n# come from {n}, as on {g} GPUs x {n} (one process '
    'emulates them;\n# mmbcn.models.classifier). The loss is the mean over '
    'the 32 images.\n')


def pretrain_name(arch, scheme, batch, data):
    return f'{arch}_{scheme}_{batch}_{data}.py'


def pretrain_configs():
    for arch, base, whose in IMAGENET_ARCHS:
        for scheme in PRETRAIN_SCHEMES:
            header = (f'ImageNet-1k pretraining of {whose} in a classifier, '
                      f'8 GPUs x 32 images, 100 epochs; {LABELS[scheme]} '
                      'in the backbone.')
            yield (osp.join('pretrain', pretrain_name(
                arch, scheme, '8xb32-100e', 'in1k')),
                   leaf(header, base, scheme))
            header = (f'ImageNet-1k pretraining of {whose} in a classifier, '
                      f'8 GPUs x 1 image (the papers\' micro-batch setting), '
                      f'100 epochs; {LABELS[scheme]} in the backbone.')
            extra = ('# 1 image per GPU: 1/32 of the base\'s total batch '
                     '(256), so 1/32 of its lr\n# (optim_wrapper above)\n'
                     'train_dataloader = dict(batch_size=1)\n'
                     'auto_scale_lr = dict(base_batch_size=8)'
                     '  # 8 GPUs x 1 image\n')
            yield (osp.join('pretrain', pretrain_name(
                arch, scheme, '8xb1-100e', 'in1k')),
                   leaf(header, base, scheme, extra,
                        optim_extra=dict(optimizer=dict(lr=0.1 / 32))))
    for arch, base, whose in SHAPES_CLS_ARCHS:
        for scheme in PRETRAIN_SCHEMES:
            header = (f'Pretraining {whose} on the built-in classification '
                      f'task, 1 process x 32 images, 300 iterations; '
                      f'{LABELS[scheme]} in the backbone.')
            yield (osp.join('pretrain', pretrain_name(
                arch, scheme, '1xb32-300i', 'shapes-cls')),
                   leaf(header, base, scheme))
        m = SHAPES_MICRO_BATCH
        header = (f'Pretraining {whose} on the built-in classification task '
                  f'at the micro batch: BN statistics over {images(m)} (32 '
                  f'per step), 300 iterations; {LABELS["bn"]} in the '
                  'backbone.')
        yield (osp.join('pretrain', pretrain_name(
            arch, 'bn', f'1xb32-mb{m}-300i', 'shapes-cls')),
               leaf(header, base, 'bn',
                    MICRO_NOTE.format(n=images(m), g=32 // m),
                    model_extra=dict(micro_batch=m)))


def pretrained_checkpoint(scheme, batch):
    """Where tools/reproduce.py leaves seed 0's checkpoint of a shapes
    pretraining config."""
    stem = pretrain_name('resnet18', scheme, batch, 'shapes-cls')[:-3]
    return f'work_dirs/reproduce/{stem}_seed0/iter_300.pth'


#: The shapes models fine-tuned from the pretrained ResNet-18:
#: (model, iterations, base, leaf name with {tag} / {scheme}, where)
SHAPES_FINETUNE_TASKS = (
    ('Mask R-CNN', 100, 'mask-rcnn_r18-cls_fpn_finetune_1xb2-100i_shapes.py',
     'mask-rcnn_r18-{tag}_fpn_{det_tag}_1xb2-100i_shapes.py', det_where),
    ('DeepLabV3', 200, 'deeplabv3_r18-d8-cls_finetune_1xb2-200i_shapes.py',
     'deeplabv3_r18-{tag}-d8_{scheme}_1xb2-200i_shapes.py', seg_where),
)


def shapes_finetune_configs():
    m = SHAPES_MICRO_BATCH
    cells = [(s, '1xb32-300i', 'cls') for s in PRETRAIN_SCHEMES]
    cells.append(('bn', f'1xb32-mb{m}-300i', f'cls-mb{m}'))
    for scheme, batch, tag in cells:
        how = (f'at the micro batch (BN over {images(m)})' if 'mb' in batch
               else 'at 1 process x 32 images')
        init = dict(backbone=dict(init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint=pretrained_checkpoint(scheme, batch))))
        for model, iters, base, name, where in SHAPES_FINETUNE_TASKS:
            header = (f'Small {model} on the built-in shapes data fine-tuned '
                      f'for {iters} iterations from the ResNet-18 pretrained '
                      f'{how} on the built-in classification task; '
                      f'{LABELS[scheme]} {where(scheme)}.')
            path = osp.join('shapes', 'finetune', name.format(
                tag=tag, scheme=scheme, det_tag=det_tag(scheme)))
            yield path, leaf(header, base, scheme,
                             model_extra=init).replace("'../_base_/",
                                                       "'../../_base_/")


#: The folders of configs/ this script writes.
FAMILIES = ('mask_rcnn', 'deeplabv3', 'shapes', 'shapes/finetune', 'finetune',
            'pretrain')


def all_configs():
    """{path relative to configs/: file content} of every leaf."""
    configs = {}
    for family in (mask_rcnn_configs, deeplabv3_configs, shapes_configs,
                   finetune_configs, pretrain_configs,
                   shapes_finetune_configs):
        for path, text in family():
            assert path not in configs, path
            configs[path] = text
    return configs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config-dir', default=osp.join(REPO_ROOT,
                                                         'configs'),
                        help='where to write (default: the repo\'s configs/)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a leaf is missing or '
                        'differs from what would be written')
    args = parser.parse_args(argv)
    stale = []
    for path, text in sorted(all_configs().items()):
        full = osp.join(args.config_dir, path)
        current = None
        if osp.isfile(full):
            with open(full, encoding='utf-8') as f:
                current = f.read()
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            os.makedirs(osp.dirname(full), exist_ok=True)
            with open(full, 'w', encoding='utf-8') as f:
                f.write(text)
    generated = set(all_configs())
    unknown = sorted(
        osp.relpath(p, args.config_dir) for family in FAMILIES
        for p in glob.glob(osp.join(args.config_dir, family, '*.py'))
        if osp.relpath(p, args.config_dir) not in generated)
    if unknown:
        print('not written by this script (hand-written?): ' +
              ', '.join(unknown))
    if args.check:
        if stale:
            print('out of date (run tools/misc/generate_configs.py): ' +
                  ', '.join(stale))
            return 1
        print(f'all {len(all_configs())} generated configs are up to date')
        return 0
    print(f'wrote {len(stale)} of {len(all_configs())} configs under '
          f'{args.config_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
