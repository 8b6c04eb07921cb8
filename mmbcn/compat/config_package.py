"""Shim: ``_base_ = 'mmbcn::...'`` in a user's config.

mmengine 0.10.7 resolves a ``package::path`` base only for the packages in
its table ``mmengine.config.utils.MODULE2PACKAGE`` (OpenMMLab's own), and
then reads ``<installed package>/.mim/configs/<path>``, the folder mmdet's
and mmseg's wheels ship their configs in. mmbcn ships its configs the same
way (``mmbcn/.mim/configs``: in a source checkout a link to ``configs/``,
in a wheel a copy); this module adds mmbcn to the table. Applied on
``import mmbcn``, so the config must be read after that import (mmbcn's
tools, or ``import mmbcn`` first in a script or notebook).
"""
from mmengine.config import utils

#: import name -> distribution name, as mmengine's table writes them
PACKAGE = {'mmbcn': 'mmbcn'}

for _module, _dist in PACKAGE.items():
    utils.MODULE2PACKAGE.setdefault(_module, _dist)
