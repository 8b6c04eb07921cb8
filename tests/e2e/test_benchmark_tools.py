"""The layer and folded-model benchmark scripts, run end to end at toy sizes:
they print and save markdown tables with a ratio column against the baseline
(the figures themselves come from running them at full size)."""
import os
import os.path as osp
import re
import subprocess
import sys
from repo import REPO

ROOT = REPO


def run_tool(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'analysis', script), *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(text):
    return [[c.strip() for c in line.strip().strip('|').split('|')]
            for line in text.splitlines()
            if line.startswith('|') and not line.startswith('|---')]


def test_benchmark_layers_tables(tmp_path):
    out = tmp_path / 'layers.md'
    run_tool('benchmark_layers.py', '--input-size', '64', '64',
             '--batch-sizes', '1', '--repeats', '3', '--threads', '1',
             '--out', str(out))
    text = out.read_text()
    assert '### Norm layers, batch 1 (ratios to GroupNorm)' in text
    assert '### Convolutions, batch 1 (ratios to nn.Conv2d)' in text
    rows = [r for r in table_rows(text) if r[0] != 'shape']
    layers = {r[1] for r in rows}
    assert {'GroupNorm(32)', 'BCN micro', 'nn.Conv2d',
            'WSConv2d'} <= layers
    assert len(rows) == 4 * 4 + 5 * 4  # 4 norm and 5 conv shapes
    for r in rows:
        if r[1] in ('GroupNorm(32)', 'nn.Conv2d'):  # baselines
            assert r[3] == r[5] == '1.00'
        assert float(r[4]) > 0 and float(r[5]) > 0


def test_benchmark_folded_table(tmp_path):
    out = tmp_path / 'folded.md'
    run_tool('benchmark_folded.py', '--models', 'deeplabv3', '--input-size',
             '64', '64', '--repeats', '3', '--threads', '1', '--no-unfolded',
             '--out', str(out))
    rows = table_rows(out.read_text())
    assert rows[0][:4] == ['model', 'gn ms', 'folded ms', 'folded / gn (IQR)']
    (row, ) = rows[1:]
    assert row[0] == 'deeplabv3'
    assert re.fullmatch(r'\d+\.\d{3} \(\d+\.\d{3}-\d+\.\d{3}\)', row[3])
    # the tool reports how far the folded model is from the original (the
    # 1e-4 fidelity itself is tested in test_deploy.py; here the weights are
    # untrained and the float32 rounding of 50 folded layers shows)
    error = float(re.search(r'relative (\S+)\)', row[-1]).group(1))
    assert error < 1e-3
