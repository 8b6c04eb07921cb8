"""mmbcn: Weight Standardization and Batch-Channel Normalization for
OpenMMLab 2.x (mmdet 3.3.0, mmsegmentation 1.2.2).

The OpenMMLab stack itself is installed by ``make install`` (mmcv 2.1.0 has to
be built from source with its compiled ops); this file installs the package.
"""
import os
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version():
    text = (HERE / 'mmbcn' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(*names):
    reqs = []
    for name in names:
        for line in (HERE / 'requirements' / name).read_text().splitlines():
            line = line.split('#')[0].strip()
            if line:
                reqs.append(line)
    return reqs


def ext_modules():
    """The CPU row kernels behind BCN (mmbcn._ext), compiled against the
    installed torch; MMBCN_WITH_EXT=0 skips them (a pure-torch path is used
    instead)."""
    if os.environ.get('MMBCN_WITH_EXT', '1') == '0':
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        print('mmbcn: torch is not importable in this build environment, so '
              'the C++ kernels are skipped (install with '
              '--no-build-isolation to build them)')
        return [], {}
    ext = CppExtension(
        'mmbcn._ext', ['mmbcn/models/functional/csrc/bcn_rows.cpp'],
        extra_compile_args=['-O3', '-fopenmp'], extra_link_args=['-fopenmp'])
    return [ext], {'build_ext': BuildExtension}


EXT_MODULES, CMDCLASS = ext_modules()

setup(
    name='mmbcn',
    version=read_version(),
    description='Weight Standardization and Batch-Channel Normalization '
    'for micro-batch training in mmdet and mmsegmentation',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    install_requires=read_requirements('stack.txt', 'runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    ext_modules=EXT_MODULES,
    cmdclass=CMDCLASS,
    # the configs, where mmengine looks for `mmbcn::<path>` bases (as
    # mmdet's / mmseg's .mim folders); mmbcn/.mim/configs links to configs/
    package_data={'mmbcn': ['models/functional/csrc/*.cpp',
                            '.mim/model-index.yml', '.mim/configs/*.md',
                            '.mim/configs/**/*.py']},
)
