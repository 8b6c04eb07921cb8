"""Tests for the built-in synthetic shapes dataset and its dataset classes."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mmbcn.datasets import (SHAPES_CLASSES, ShapesDetDataset,
                            ShapesSegDataset, check_coco_annotation,
                            generate_shapes)
from repo import REPO

REPO_ROOT = REPO
NUM_CLASSES = len(SHAPES_CLASSES)
SIZE = 64


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    summary = generate_shapes(root, num_train=6, num_val=3, img_size=SIZE,
                              seed=0, progress=False)
    assert summary['train']['images'] == 6
    assert summary['val']['images'] == 3
    return root


def _all_files(root):
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def test_layout(shapes_root):
    for split, n in (('train', 6), ('val', 3)):
        names = [f'{i:06d}.png' for i in range(n)]
        assert sorted(os.listdir(shapes_root / 'images' / split)) == names
        assert sorted(os.listdir(shapes_root / 'seg_maps' / split)) == names
        assert (shapes_root / 'annotations' /
                f'instances_{split}.json').is_file()
        img = cv2.imread(str(shapes_root / 'images' / split / names[0]),
                         cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
        seg = cv2.imread(str(shapes_root / 'seg_maps' / split / names[0]),
                         cv2.IMREAD_UNCHANGED)
        assert seg.shape == (SIZE, SIZE) and seg.dtype == np.uint8


def test_determinism(tmp_path):
    kwargs = dict(num_train=3, num_val=2, img_size=48, progress=False)
    generate_shapes(tmp_path / 'a', seed=3, **kwargs)
    generate_shapes(tmp_path / 'b', seed=3, **kwargs)
    generate_shapes(tmp_path / 'c', seed=4, **kwargs)
    a, b, c = (_all_files(tmp_path / d) for d in 'abc')
    assert len(a) == 3 + 2 + 3 + 2 + 2
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith('images'))


def test_regenerate_smaller_removes_stale(tmp_path):
    generate_shapes(tmp_path, num_train=4, num_val=2, img_size=32,
                    progress=False)
    generate_shapes(tmp_path, num_train=2, num_val=1, img_size=32,
                    progress=False)
    assert sorted(os.listdir(tmp_path / 'images' / 'train')) == [
        '000000.png', '000001.png'
    ]
    assert os.listdir(tmp_path / 'seg_maps' / 'val') == ['000000.png']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_annotations_match_masks(shapes_root, split):
    coco = COCO(str(shapes_root / 'annotations' / f'instances_{split}.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
        list(SHAPES_CLASSES)
    assert sorted(coco.getCatIds()) == list(range(1, NUM_CLASSES + 1))
    assert len(coco.getAnnIds()) > 0
    for img_info in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_info['id']))
        assert len(anns) >= 1  # the top shape is always visible
        seg = cv2.imread(
            str(shapes_root / 'seg_maps' / split / img_info['file_name']),
            cv2.IMREAD_UNCHANGED)
        assert set(np.unique(seg)) <= set(range(NUM_CLASSES + 1))
        union = np.zeros((NUM_CLASSES + 1, SIZE, SIZE), bool)
        covered = np.zeros((SIZE, SIZE), int)
        for ann in anns:
            assert ann['iscrowd'] == 0
            assert isinstance(ann['segmentation']['counts'], str)
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            assert mask.shape == (SIZE, SIZE)
            assert mask.sum() == ann['area'] > 0
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [
                xs.min(), ys.min(), xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1
            ]
            np.testing.assert_allclose(
                mask_utils.toBbox(ann['segmentation']), ann['bbox'])
            union[ann['category_id']] |= mask
            covered += mask
        # Visible parts of different instances never overlap.
        assert covered.max() == 1
        for k in range(1, NUM_CLASSES + 1):
            np.testing.assert_array_equal(union[k], seg == k)
        np.testing.assert_array_equal(covered == 0, seg == 0)


def test_images_have_contrast(shapes_root):
    # Objects should stand out from the background they are drawn on.
    for i in range(6):
        img = cv2.imread(str(shapes_root / 'images' / 'train' /
                             f'{i:06d}.png')).astype(float)
        seg = cv2.imread(
            str(shapes_root / 'seg_maps' / 'train' / f'{i:06d}.png'),
            cv2.IMREAD_UNCHANGED)
        fg = img[seg > 0].mean(0)
        bg = img[seg == 0].mean(0)
        assert np.linalg.norm(fg - bg) > 30


def test_det_dataset_pipeline(shapes_root):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    cfg = dict(
        type='ShapesDetDataset',
        data_root=str(shapes_root),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs')
        ])
    dataset = DATASETS.build(cfg)
    assert isinstance(dataset, ShapesDetDataset)
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == SHAPES_CLASSES
    item = dataset[0]
    assert tuple(item['inputs'].shape) == (3, SIZE, SIZE)
    inst = item['data_samples'].gt_instances
    n = len(inst)
    assert n >= 1
    boxes = inst.bboxes.tensor.numpy()
    assert boxes.shape == (n, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= SIZE).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    labels = inst.labels.numpy()
    assert ((labels >= 0) & (labels < NUM_CLASSES)).all()
    masks = inst.masks.to_ndarray()
    assert masks.shape == (n, SIZE, SIZE)
    for box, mask in zip(boxes, masks):
        ys, xs = np.nonzero(mask)
        np.testing.assert_allclose(
            box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_seg_dataset_pipeline(shapes_root):
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = dict(
        type='ShapesSegDataset',
        data_root=str(shapes_root),
        data_prefix=dict(
            img_path='images/val', seg_map_path='seg_maps/val'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ])
    dataset = DATASETS.build(cfg)
    assert isinstance(dataset, ShapesSegDataset)
    assert len(dataset) == 3
    assert dataset.metainfo['classes'] == ('background', ) + SHAPES_CLASSES
    item = dataset[1]
    assert tuple(item['inputs'].shape) == (3, SIZE, SIZE)
    sem = item['data_samples'].gt_sem_seg.data.numpy()
    assert sem.shape == (1, SIZE, SIZE)
    assert sem.min() >= 0 and sem.max() <= NUM_CLASSES
    assert sem.max() >= 1
    expected = cv2.imread(
        str(shapes_root / 'seg_maps' / 'val' / '000001.png'),
        cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(sem[0], expected)


def test_cli(tmp_path):
    out = tmp_path / 'cli_shapes'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    proc = subprocess.run([
        sys.executable, 'tools/dataset_converters/make_shapes.py',
        '--out-dir', str(out), '--num-train', '2', '--num-val', '1',
        '--img-size', '40', '--seed', '1', '--no-progress'
    ], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'train: 2 images' in proc.stdout
    assert 'val: 1 images' in proc.stdout
    check_coco_annotation(out / 'annotations' / 'instances_train.json')
    assert len(os.listdir(out / 'images' / 'val')) == 1

    bad = subprocess.run([
        sys.executable, 'tools/dataset_converters/make_shapes.py',
        '--out-dir', str(out), '--num-train', '0', '--no-progress'
    ], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert 'num_train' in bad.stderr


def test_missing_annotation_file(tmp_path):
    path = tmp_path / 'annotations' / 'instances_train.json'
    with pytest.raises(FileNotFoundError) as err:
        check_coco_annotation(path)
    assert str(path) in str(err.value)
    assert 'make_shapes.py' in str(err.value)

    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    with pytest.raises(FileNotFoundError, match='make_shapes.py') as err:
        DATASETS.build(
            dict(
                type='ShapesDetDataset',
                data_root=str(tmp_path),
                ann_file='annotations/instances_train.json',
                data_prefix=dict(img='images/train/'),
                pipeline=[]))
    assert str(path) in str(err.value)


def test_corrupt_annotation_file(shapes_root, tmp_path):
    good = (shapes_root / 'annotations' / 'instances_train.json').read_text()
    truncated = tmp_path / 'truncated.json'
    truncated.write_text(good[:len(good) // 2])
    with pytest.raises(ValueError, match='not valid JSON') as err:
        check_coco_annotation(truncated)
    assert str(truncated) in str(err.value)

    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match='not valid JSON') as err:
        DATASETS.build(
            dict(
                type='ShapesDetDataset',
                data_root=str(shapes_root),
                ann_file=str(truncated),
                data_prefix=dict(img='images/train/'),
                pipeline=[]))
    assert str(truncated) in str(err.value)

    data = json.loads(good)
    del data['categories']
    no_cats = tmp_path / 'no_categories.json'
    no_cats.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='categories') as err:
        check_coco_annotation(no_cats)
    assert str(no_cats) in str(err.value)

    wrong_type = tmp_path / 'list.json'
    wrong_type.write_text('[]')
    with pytest.raises(ValueError, match='expected an object'):
        check_coco_annotation(wrong_type)

    data = json.loads(good)
    data['annotations'][0]['image_id'] = 10**6
    dangling = tmp_path / 'dangling.json'
    dangling.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='unknown image_id'):
        check_coco_annotation(dangling)

    with pytest.raises(ValueError, match='not among the categories'):
        check_coco_annotation(
            shapes_root / 'annotations' / 'instances_val.json',
            classes=('circle', 'hexagon'))


def test_seg_dataset_errors(shapes_root, tmp_path):
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')

    def build(root, img='images/train', seg='seg_maps/train'):
        return DATASETS.build(
            dict(
                type='ShapesSegDataset',
                data_root=str(root),
                data_prefix=dict(img_path=img, seg_map_path=seg),
                pipeline=[]))

    with pytest.raises(FileNotFoundError, match='make_shapes.py') as err:
        build(tmp_path)
    assert str(tmp_path / 'images' / 'train') in str(err.value)

    (tmp_path / 'images' / 'train').mkdir(parents=True)
    (tmp_path / 'seg_maps' / 'train').mkdir(parents=True)
    with pytest.raises(ValueError, match='empty') as err:
        build(tmp_path)
    assert str(tmp_path / 'images' / 'train') in str(err.value)

    with pytest.raises(FileNotFoundError, match='seg_maps') as err:
        build(shapes_root, seg='seg_maps/missing')
    assert 'make_shapes.py' in str(err.value)


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=0), 'num_train'),
    (dict(num_train=2.5), 'num_train'),
    (dict(num_val=-1), 'num_val'),
    (dict(num_val=True), 'num_val'),
    (dict(img_size=8), 'img_size'),
    (dict(img_size='64'), 'img_size'),
    (dict(seed=-1), 'seed'),
    (dict(out_dir=''), 'out_dir'),
])
def test_bad_generator_arguments(tmp_path, kwargs, name):
    args = dict(out_dir=tmp_path, num_train=1, num_val=1, img_size=32,
                progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name) as err:
        generate_shapes(**args)
    # The message shows the rejected value and what would be valid.
    assert repr(kwargs[name]) in str(err.value) or \
        str(kwargs[name]) in str(err.value)
    assert 'must be' in str(err.value)
    assert not (tmp_path / 'annotations').exists()


def test_det_data_problems_are_named_when_the_dataset_is_built(
        shapes_root, tmp_path):
    """Before training starts: a missing image (mmcv would fail inside the
    data loader, mid-run), a split without images, a split that filter_cfg
    empties."""
    import json
    import shutil

    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    root = tmp_path / 'shapes'
    shutil.copytree(shapes_root, root)
    ann = root / 'annotations' / 'instances_train.json'

    def build(**kwargs):
        return DATASETS.build(dict(
            type='ShapesDetDataset', data_root=str(root),
            ann_file='annotations/instances_train.json',
            data_prefix=dict(img='images/train/'), pipeline=[], **kwargs))
    coco = json.loads(ann.read_text())
    missing = root / 'images' / 'train' / coco['images'][1]['file_name']
    missing.unlink()
    with pytest.raises(FileNotFoundError) as err:
        build()
    assert f'Shapes image not found: {str(missing)!r}' in str(err.value)
    assert str(ann) in str(err.value) and 'make_shapes.py' in str(err.value)

    ann.write_text(json.dumps(dict(coco, images=[], annotations=[])))
    with pytest.raises(ValueError, match='the split has no images'):
        build()
    # images without objects: filter_empty_gt leaves none for training
    ann.write_text(json.dumps(dict(coco, images=coco['images'][:1],
                                   annotations=[])))
    with pytest.raises(ValueError, match='no image of the split is left '
                       'after filter_cfg'):
        build(filter_cfg=dict(filter_empty_gt=True))
    assert len(build(filter_cfg=dict(filter_empty_gt=True),
                     test_mode=True)) == 1  # testing keeps them


def test_seg_missing_image_is_named(shapes_root, tmp_path):
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    names = tmp_path / 'train.txt'
    names.write_text('000000\n999999\n')
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(dict(
            type='ShapesSegDataset', data_root=str(shapes_root),
            ann_file=str(names),
            data_prefix=dict(img_path='images/train',
                             seg_map_path='seg_maps/train'), pipeline=[]))
    assert 'Shapes image not found' in str(err.value)
    assert '999999.png' in str(err.value)
