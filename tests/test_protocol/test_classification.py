"""The pieces of backbone pretraining: the classifier around a detector's /
segmenter's backbone (micro-batch statistics), the image-folder dataset and
its transforms, the accuracy metric and the built-in classification task."""
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import BaseDataElement

import mmbcn  # noqa: F401
from mmbcn.datasets.image_folder import ImageFolderDataset
from mmbcn.datasets.shapes import SHAPES_CLASSES
from mmbcn.datasets.shapes_cls import generate_shapes_cls, largest_shape_label
from mmbcn.datasets.transforms import (PackClsInputs, RandomResizedCrop,
                                       ResizeShortEdge, random_resized_box)
from mmbcn.evaluation import ClsAccuracy


def classifier(norm, micro_batch=None):
    init_default_scope('mmdet')
    import mmdet.utils
    mmdet.utils.register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='BackboneClassifier', num_classes=3, micro_batch=micro_batch,
        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8,
                      num_stages=2, strides=(1, 2), dilations=(1, 1),
                      out_indices=(1, ), norm_cfg=norm, norm_eval=False)))
    model.init_weights()
    return model.train()


def samples(labels):
    out = []
    for label in labels:
        sample = BaseDataElement()
        sample.gt_label = torch.tensor(label)
        out.append(sample)
    return out


def test_micro_batch_is_data_parallel_over_chunks():
    """micro_batch=2 on 4 images: the loss and every gradient equal the
    mean over two models that each see 2 images (2 GPUs x 2 images with
    per-GPU BN statistics); the whole batch at once differs."""
    x = torch.randn(4, 3, 16, 16)
    labels = [0, 2, 1, 1]
    bn = dict(type='BN', requires_grad=True)
    micro = classifier(bn, micro_batch=2)
    loss = micro(x, samples(labels), mode='loss')['loss']
    loss.backward()
    halves = []
    for part in (slice(0, 2), slice(2, 4)):
        gpu = classifier(bn)
        logits = gpu(x[part], mode='tensor')
        part_loss = F.cross_entropy(logits, torch.tensor(labels[part]))
        part_loss.backward()
        halves.append((part_loss, dict(gpu.named_parameters())))
    torch.testing.assert_close(loss, (halves[0][0] + halves[1][0]) / 2)
    for name, p in micro.named_parameters():
        expected = (halves[0][1][name].grad + halves[1][1][name].grad) / 2
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6,
                                   msg=name)
    whole = classifier(bn)(x, samples(labels), mode='loss')['loss']
    assert not torch.allclose(whole, loss)


def test_micro_batch_changes_nothing_for_a_batch_independent_norm():
    x = torch.randn(4, 3, 16, 16)
    gn = dict(type='GN', num_groups=4, requires_grad=True)
    a = classifier(gn, micro_batch=1)(x, samples([0, 1, 2, 0]), mode='loss')
    b = classifier(gn)(x, samples([0, 1, 2, 0]), mode='loss')
    torch.testing.assert_close(a['loss'], b['loss'], rtol=1e-5, atol=1e-6)


def test_predict_and_bad_arguments():
    model = classifier(dict(type='BN')).eval()
    out = model(torch.randn(2, 3, 16, 16), samples([0, 1]), mode='predict')
    assert [int(s.pred_label) for s in out] == \
        [int(s.pred_score.argmax()) for s in out]
    torch.testing.assert_close(out[0].pred_score.sum(), torch.tensor(1.))
    with pytest.raises(ValueError, match="mode='loss', 'predict' and|valid"):
        model(torch.randn(1, 3, 16, 16), mode='train')
    with pytest.raises(ValueError, match='micro_batch=0'):
        classifier(dict(type='BN'), micro_batch=0)


def test_accuracy_metric():
    metric = ClsAccuracy()
    metric.process(None, [dict(pred_label=torch.tensor(1),
                               gt_label=torch.tensor(1)),
                          dict(pred_label=torch.tensor(0),
                               gt_label=torch.tensor(2)),
                          dict(pred_label=torch.tensor(2),
                               gt_label=torch.tensor(2))])
    assert metric.compute_metrics(metric.results) == dict(top1=200 / 3)


def write(path, value=0, size=(6, 8)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.full(size + (3, ), value, np.uint8))


def test_image_folder_classes_and_list_file(tmp_path):
    for cls, n in (('b', 2), ('a', 1)):
        for i in range(n):
            write(tmp_path / 'train' / cls / f'{i}.png')
    ds = ImageFolderDataset(data_root=str(tmp_path), data_prefix='train',
                            pipeline=[])
    assert ds.metainfo['classes'] == ('a', 'b')
    assert [d['gt_label'] for d in ds] == [0, 1, 1]
    write(tmp_path / 'val' / 'x.png')
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'val.txt').write_text('x.png 3\n')
    ds = ImageFolderDataset(data_root=str(tmp_path), data_prefix='val',
                            ann_file='meta/val.txt', num_classes=5,
                            pipeline=[])
    assert ds[0]['gt_label'] == 3
    assert ds[0]['img_path'] == str(tmp_path / 'val' / 'x.png')
    with pytest.raises(ValueError, match=r'label 3 is not in \[0, 2\)'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix='val',
                           ann_file='meta/val.txt', num_classes=2)
    (tmp_path / 'meta' / 'val.txt').write_text('x.png\n')
    with pytest.raises(ValueError, match='val.txt:1: expected'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix='val',
                           ann_file='meta/val.txt', num_classes=2)
    with pytest.raises(ValueError, match='needs classes'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix='val',
                           ann_file='meta/val.txt')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix='nope')
    with pytest.raises(FileNotFoundError, match='make_shapes.py --task cls'):
        ImageFolderDataset(data_root=str(tmp_path / 'shapes_cls'),
                           data_prefix='train')
    with pytest.raises(ValueError, match=r"classes \['c'\]"):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix='train',
                           classes=['a', 'c'])


def test_crop_resize_and_pack():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = random_resized_box(30, 50, rng)
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50
        assert h * w >= 0.08 * 30 * 50 * 0.9
    img = np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3)
    out = RandomResizedCrop(size=16).transform(dict(img=img))
    assert out['img'].shape == (16, 16, 3)
    out = ResizeShortEdge(size=12).transform(dict(img=img))
    assert out['img'].shape == (12, 20, 3)
    packed = PackClsInputs().transform(dict(img=img, gt_label=2))
    assert packed['inputs'].shape == (3, 30, 50)
    assert torch.equal(packed['inputs'][:, 1, 2], torch.from_numpy(img[1, 2]))
    assert int(packed['data_samples'].gt_label) == 2


def test_largest_shape_label():
    seg = np.zeros((4, 4), np.uint8)
    assert largest_shape_label(seg) == -1
    seg[0, :3] = 2
    seg[1, :2] = 4
    assert largest_shape_label(seg) == 1  # class 2 (square), 3 px vs 2
    seg[1, 2] = 4
    assert largest_shape_label(seg) == -1  # a tie


def test_generated_classification_task(tmp_path):
    summary = generate_shapes_cls(tmp_path / 'a', num_train=8, num_val=4,
                                  img_size=32, seed=3, progress=False)
    assert summary == dict(train=dict.fromkeys(SHAPES_CLASSES, 2),
                           val=dict.fromkeys(SHAPES_CLASSES, 1))
    again = generate_shapes_cls(tmp_path / 'b', num_train=8, num_val=4,
                                img_size=32, seed=3, progress=False)
    assert again == summary
    for split in ('train', 'val'):
        for name in SHAPES_CLASSES:
            files = sorted(os.listdir(tmp_path / 'a' / split / name))
            assert files == sorted(os.listdir(tmp_path / 'b' / split / name))
            for f in files:
                assert (tmp_path / 'a' / split / name / f).read_bytes() == \
                    (tmp_path / 'b' / split / name / f).read_bytes()
    ds = ImageFolderDataset(data_root=str(tmp_path / 'a'),
                            data_prefix='train', pipeline=[])
    assert ds.metainfo['classes'] == tuple(sorted(SHAPES_CLASSES))
