"""tools/analysis/benchmark_norms.py end to end at a toy size: the three
tables with every layer and a ratio column against the baseline (the
figures in docs/normalizations.md come from the full-size run)."""
import os
import os.path as osp
import subprocess
import sys

from repo import REPO


def test_benchmark_norms_tables(tmp_path):
    out = tmp_path / 'norms.md'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analysis',
                                  'benchmark_norms.py'),
         '--input-size', '64', '96', '--repeats', '3', '--out', str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for title in ('### Norm alone (ratio to GroupNorm(32))',
                  '### conv 1x1 + norm (ratio to conv + GroupNorm(32))',
                  '### Tokens (ratio to LayerNorm)'):
        assert title in text
    rows = [[c.strip() for c in line.strip('|').split('|')]
            for line in text.splitlines()
            if line.startswith('|') and not line.startswith('|---')]
    rows = [r for r in rows if r[0] != 'shape']
    assert len(rows) == 2 * 7 + 2 * 8 + 3
    layers = {r[1] for r in rows}
    assert {'FRN+TLU', 'BatchRenorm', 'MABN (moving)', 'CBN (k=4, Taylor)',
            'PRepBN lam=0.5'} <= layers
    for r in rows:
        if r[1] in ('GroupNorm(32)', 'LayerNorm'):
            assert r[3] == '1.00'
        assert float(r[2]) > 0 and float(r[3]) > 0
