"""The shape of the package: what ``import mmbcn`` needs, and dependencies
that point one way (docs/architecture.md)."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest

from repo import REPO

PACKAGE = osp.join(REPO, 'mmbcn')

#: Each part of mmbcn and the parts it may import (directly or in a
#: function; 'version' and the shims of 'compat', which import no other
#: part, anywhere). The statistics synchronization of
#: 'distributed' is the primitive the layers call. 'reports' and
#: 'benchmark' sit outside the training path: nothing below them imports
#: them.
ALLOWED = {
    'version': set(),
    'scope': set(),
    'schemes': {'scope', 'models'},
    'distributed': set(),
    'compat': set(),
    'models': {'distributed', 'compat'},
    'engine': {'models', 'distributed'},
    'datasets': set(),
    'evaluation': set(),
    'converters': {'compat', 'models'},
    'apis': {'compat', 'engine', 'schemes', 'scope', 'models', 'datasets',
             'distributed'},
    'deploy': {'apis', 'models', 'schemes', 'scope'},
    'reports': {'apis', 'compat', 'engine', 'models', 'schemes', 'scope'},
    'benchmark': {'apis', 'reports', 'models', 'engine', 'schemes', 'scope',
                  'distributed'},
}
#: Inside models, the layers build on the kernels, never the reverse.
FUNCTIONAL_MAY_NOT_IMPORT = ('mmbcn.models.layers', 'mmbcn.models.diagnostics')


def modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                rel = osp.relpath(path, REPO)[:-3].replace(os.sep, '.')
                yield path, rel[:-len('.__init__')] if rel.endswith(
                    '__init__') else rel


def imported(path: str, module: str):
    """Every mmbcn module that ``module`` imports, anywhere in the file."""
    package = module if path.endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                prefix = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                prefix = node.module or ''
            names = [prefix] if node.module else \
                [f'{prefix}.{a.name}' for a in node.names]
        else:
            continue
        yield from (n for n in names if n == 'mmbcn' or
                    n.startswith('mmbcn.'))


def part(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def test_dependencies_point_one_way():
    wrong = []
    for path, module in modules():
        mine = part(module)
        if mine in ('', '_ext'):
            continue  # the package's __init__ re-exports
        assert mine in ALLOWED, f'{module}: a part not in ALLOWED'
        for target in imported(path, module):
            theirs = part(target)
            if theirs and theirs not in (mine, 'version', 'compat') and \
                    theirs not in ALLOWED[mine]:
                wrong.append(f'{module} imports {target}')
            if module.startswith('mmbcn.models.functional') and \
                    target.startswith(FUNCTIONAL_MAY_NOT_IMPORT):
                wrong.append(f'{module} imports {target}')
    assert not wrong, '\n'.join(wrong)


def test_the_allowed_graph_has_no_cycle():
    state = {}

    def visit(node, trail):
        if state.get(node) == 'done':
            return
        assert state.get(node) != 'open', f'cycle: {trail + [node]}'
        state[node] = 'open'
        for dep in ALLOWED[node]:
            visit(dep, trail + [node])
        state[node] = 'done'

    for node in ALLOWED:
        visit(node, [])


@pytest.mark.parametrize('statement', [
    'import mmbcn',
    'from mmbcn import BCN, WSConv2d, apply_scheme, SCHEMES',
    'import mmbcn.engine.hooks',
    'import mmbcn.datasets',
    'import mmbcn.converters',
])
def test_layers_import_without_the_task_toolboxes(statement):
    code = (f'{statement}\nimport sys\n'
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mmdet', 'mmseg', 'mmpretrain'))\nprint(heavy)")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == '[]'


def test_layers_are_registered_in_the_root_registry():
    from mmengine.registry import HOOKS, MODELS

    import mmbcn  # noqa: F401
    for name in ('BCN', 'WSConv2d', 'ScaledWSConv2d', 'EvoNormB0',
                 'EvoNormS0', 'ChannelAffine'):
        assert MODELS.get(name) is not None, name
    for name in ('BCNUpdateRateHook', 'SingularityHook', 'RNGStateHook'):
        assert HOOKS.get(name) is not None, name
