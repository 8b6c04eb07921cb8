"""The configs travel with the package: after a (non-editable) install, a
user's config anywhere inherits ``mmbcn::<folder>/<config>.py`` through
mmengine, as it inherits ``mmdet::...``.

The package is installed with pip into a folder (``--target``, no C++
build) from a copy of the source tree, and the check runs in a fresh
interpreter whose ``sys.path`` has that folder and not the repository, from
a working directory outside it.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

from mmengine.config import Config

from repo import REPO

LEAF = 'mask_rcnn/mask-rcnn_r50_fpn_bcn-ws-all_2x_coco.py'

CHECK = r'''
import copy, json, os.path as osp, sys
import mmbcn
from mmengine.config import Config
from mmengine.utils import get_installed_path
from mmbcn.apis import load_config

cfg = Config.fromfile('my_config.py')
ours = load_config('my_config.py')
written, ours = cfg.model.to_dict(), ours.model.to_dict()
# built as mmdet's own tools build it
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
model = MODELS.build(copy.deepcopy(cfg.model))
groups = sorted({m.num_groups for m in model.backbone.modules()
                 if type(m).__name__ == 'BCN'})
ws = sum(type(m).__name__ == 'WSConv2d' for m in model.modules())
print(json.dumps(dict(
    mmbcn=osp.dirname(mmbcn.__file__),
    installed=get_installed_path('mmbcn'),
    model=written, ours=ours,
    label=cfg.norm_scheme, groups=groups, ws=ws), default=repr))
'''


def copy_source(dst):
    keep = ('setup.py', 'pyproject.toml', 'README.md', 'requirements',
            'mmbcn', 'configs')
    for name in keep:
        src = osp.join(REPO, name)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(dst, name), symlinks=True,
                            ignore=shutil.ignore_patterns(
                                '__pycache__', '*.so', '*.pyc'))
        else:
            shutil.copy(src, dst)


def test_installed_package_ships_its_configs(tmp_path):
    source, target, user = (tmp_path / d for d in ('src', 'site', 'user'))
    source.mkdir()
    user.mkdir()
    copy_source(source)
    env = dict(os.environ, MMBCN_WITH_EXT='0',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    env.pop('PYTHONPATH', None)
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
         '--no-build-isolation', '--target', str(target), str(source)],
        check=True, env=env, cwd=str(tmp_path), timeout=300)
    shipped = target / 'mmbcn' / '.mim' / 'configs'
    assert (shipped / LEAF).is_file() and not (shipped / LEAF).is_symlink()
    assert (shipped / '_base_' / 'custom_imports.py').is_file()

    (user / 'my_config.py').write_text(
        f"_base_ = 'mmbcn::{LEAF}'\n"
        'model = dict(backbone=dict(norm_cfg=dict(num_groups=16)))\n')
    run = subprocess.run(
        [sys.executable, '-c', CHECK], env=dict(env, PYTHONPATH=str(target)),
        cwd=str(user), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out['mmbcn'] == str(target / 'mmbcn')  # not the repository's
    assert out['installed'] == str(target / 'mmbcn')
    assert out['label'] == 'bcn-ws'
    assert out['groups'] == [16] and out['ws'] == 69
    assert out['model'] == out['ours']
    # the repository's leaf, with the user's edit
    expected = Config.fromfile(osp.join(REPO, 'configs', LEAF)).model
    expected.backbone.norm_cfg.num_groups = 16
    assert out['model'] == json.loads(json.dumps(expected.to_dict(),
                                                 default=repr))
