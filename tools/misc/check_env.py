"""Check that the pinned stack and mmbcn are installed in this interpreter.

    python tools/misc/check_env.py [--quiet]

Reads the pins from requirements/*.txt, checks each installed version,
that mmcv has its compiled ops (``mmcv._ext``), and that ``mmbcn`` is
installed from this checkout. Exit status 0 when all is in place, 1 otherwise
(``make install`` then installs what is missing). Runs before anything but
the standard library is installed.
"""
import argparse
import warnings
import importlib
import importlib.metadata as metadata
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
REQUIREMENT_FILES = ('build.txt', 'stack.txt', 'runtime.txt', 'tests.txt',
                     'deploy.txt')


def read_requirements():
    reqs = []
    for name in REQUIREMENT_FILES:
        with open(os.path.join(ROOT, 'requirements', name)) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if line:
                    reqs.append(line)
    return reqs


def check_requirement(req):
    """(ok, message) for one requirement line such as 'mmcv==2.1.0'."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return False, 'packaging is not installed'
    parsed = Requirement(req)
    if parsed.marker is not None and not parsed.marker.evaluate():
        return True, 'not needed on this platform'
    try:
        version = metadata.version(parsed.name)
    except metadata.PackageNotFoundError:
        return False, 'not installed'
    if parsed.specifier and not parsed.specifier.contains(
            version, prereleases=True):
        return False, f'{version} installed, need {parsed.specifier}'
    return True, version


def check_extras():
    """Checks that are not a version pin: (name, ok, message)."""
    results = []
    try:
        import torch
        results.append(('torch', True, torch.__version__))
    except ImportError as e:
        results.append(('torch', False, f'not importable: {e}'))
    try:
        importlib.import_module('mmcv._ext')
        results.append(('mmcv compiled ops', True, 'mmcv._ext imports'))
    except ImportError as e:
        results.append(('mmcv compiled ops', False,
                        f'mmcv._ext missing ({e}); mmcv must be built with '
                        'ops: pip install --no-build-isolation mmcv==2.1.0'))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            importlib.import_module('pkg_resources')
        results.append(('pkg_resources', True, 'importable'))
    except ImportError:
        results.append(('pkg_resources', False, 'missing (setuptools<81)'))
    try:
        mod = importlib.import_module('mmbcn')
        path = os.path.realpath(os.path.dirname(mod.__file__))
        here = os.path.realpath(os.path.join(ROOT, 'mmbcn'))
        ok = path == here
        results.append(('mmbcn', ok, path if ok else
                        f'imported from {path}, not this checkout ({here})'))
        try:
            importlib.import_module('mmbcn._ext')
            results.append(('mmbcn C++ kernels', True, 'mmbcn._ext imports'))
        except ImportError as e:
            results.append(('mmbcn C++ kernels', False,
                            f'mmbcn._ext missing ({e}): pip install '
                            '--no-build-isolation --no-deps -e .'))
    except Exception as e:  # noqa: BLE001 (any import failure counts)
        results.append(('mmbcn', False, f'not importable: {e}'))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quiet', action='store_true',
                        help='print only what is missing')
    args = parser.parse_args()
    # run from elsewhere so the checkout is not importable by accident
    sys.path = [p for p in sys.path
                if os.path.realpath(p or os.getcwd()) != ROOT]
    rows = [(req, *check_requirement(req)) for req in read_requirements()]
    rows += check_extras()
    missing = [r for r in rows if not r[1]]
    for name, ok, message in rows:
        if not args.quiet or not ok:
            print(f'{"ok " if ok else "MISSING"} {name:28s} {message}')
    if missing:
        print(f'{len(missing)} requirement(s) missing: run `make install`')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
