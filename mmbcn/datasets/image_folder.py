"""Image classification data for backbone pretraining: a folder of images
per class (the built-in shapes task, ImageNet's ``train/``) or a list file
of ``<relative path> <label>`` lines (ImageNet's ``val/`` with
``meta/val.txt``, the layout mmpretrain's ImageNet configs use).

:class:`ImageFolderDataset` registers in mmengine's root ``DATASETS``, so
mmdet's and mmseg's runners find it (their registries fall back to the
root). Every sample is ``dict(img_path=..., gt_label=int)``; the pipeline
loads the image (mmcv's ``LoadImageFromFile``) and packs it with
:class:`mmbcn.datasets.transforms.PackClsInputs`.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.JPEG')


def scan_class_folders(root: str, classes: Optional[Sequence[str]] = None,
                       extensions: Sequence[str] = IMG_EXTENSIONS
                       ) -> tuple:
    """``(classes, [(path, label), ...])`` of a folder with one sub-folder
    of images per class; classes sorted by name unless given."""
    if not osp.isdir(root):
        hint = ''
        if 'shapes_cls' in root:
            from .shapes_cls import GENERATE_CLS_HINT
            hint = f'; to create it, {GENERATE_CLS_HINT}'
        raise FileNotFoundError(f'image folder {root!r} does not exist'
                                + hint)
    found = sorted(d for d in os.listdir(root)
                   if osp.isdir(osp.join(root, d)))
    if classes is None:
        classes = found
    missing = [c for c in classes if c not in found]
    if missing:
        raise ValueError(f'{root}: no folder for the classes {missing}; '
                         f'the folders there are {found}')
    samples = []
    for label, name in enumerate(classes):
        folder = osp.join(root, name)
        for file in sorted(os.listdir(folder)):
            if file.endswith(tuple(extensions)):
                samples.append((osp.join(folder, file), label))
    return tuple(classes), samples


def read_list_file(path: str, prefix: str, num_classes: int) -> List[tuple]:
    """``[(path, label), ...]`` of a file of ``<relative path> <label>``
    lines (paths relative to ``prefix``)."""
    samples = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise ValueError(f'{path}:{number}: expected "<relative '
                                 f'image path> <label>", got {line!r}')
            label = int(parts[1])
            if not 0 <= label < num_classes:
                raise ValueError(f'{path}:{number}: label {label} is not '
                                 f'in [0, {num_classes})')
            samples.append((osp.join(prefix, parts[0]), label))
    return samples


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Classification samples from ``data_root/data_prefix``.

    Args:
        classes: the class names (label = index). Default: the sub-folders
            of ``data_prefix``, sorted (``ann_file`` empty), which must then
            exist.
        num_classes: with ``ann_file`` and no ``classes``: the number of
            classes (labels are checked against it).
        ann_file: a list file (see :func:`read_list_file`) relative to
            ``data_root``; empty: scan the class folders.
        data_prefix: ``dict(img='train')`` or a plain string, the image
            folder relative to ``data_root``.
        Other arguments: those of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self, data_root: str = '', data_prefix='',
                 ann_file: str = '', classes: Optional[Sequence[str]] = None,
                 num_classes: Optional[int] = None, **kwargs):
        if isinstance(data_prefix, str):
            data_prefix = dict(img=data_prefix)
        self._classes = tuple(classes) if classes is not None else None
        self._num_classes = (len(self._classes) if classes is not None else
                             num_classes)
        metainfo = kwargs.pop('metainfo', None) or {}
        if classes is not None:
            metainfo = dict(metainfo, classes=tuple(classes))
        super().__init__(data_root=data_root, data_prefix=data_prefix,
                         ann_file=ann_file, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix['img']
        if self.ann_file:
            if self._num_classes is None:
                raise ValueError(
                    f'ImageFolderDataset: ann_file={self.ann_file!r} needs '
                    'classes=[...] or num_classes=N (the label k of a line '
                    '"<path> k" must be in [0, N))')
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(
                    f'annotation list {self.ann_file!r} does not exist')
            samples = read_list_file(self.ann_file, folder,
                                     self._num_classes)
        else:
            classes, samples = scan_class_folders(folder, self._classes)
            self._metainfo['classes'] = classes
        if not samples:
            raise ValueError(f'{self.ann_file or folder}: no images found '
                             f'(extensions {IMG_EXTENSIONS})')
        return [dict(img_path=path, gt_label=label)
                for path, label in samples]
