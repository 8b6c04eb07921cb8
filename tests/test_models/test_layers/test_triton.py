"""BCN's Triton kernels on the CPU, through Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before the kernels are defined, so the
cases (tests/triton_cases.py) run in a fresh process; on CUDA the same cases
run compiled in tests/test_layers_gpu.py. Skipped where Triton is missing.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmbcn.models.functional.bcn_triton import (MAX_BLOCK, can_use_triton,
                                                has_triton)
from repo import TESTS
from triton_cases import FUNCTIONAL_CASES, LAYER_CASES



@pytest.mark.skipif(not has_triton(), reason='needs the triton package')
def test_triton_kernels_match_torch_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, osp.join(TESTS, 'triton_cases.py')], env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith('functional ok') for line in lines) == \
        len(FUNCTIONAL_CASES)
    assert sum(line.startswith('layer ok') for line in lines) == \
        len(LAYER_CASES)


def test_triton_path_only_for_float32_cuda_within_one_block():
    x = torch.zeros(2, 64, 5)
    params = [torch.zeros(64)] * 4
    assert not can_use_triton(x, 8, *params)  # CPU
    if not (has_triton() and torch.cuda.is_available()):
        return
    cuda = [p.cuda() for p in params]
    assert can_use_triton(x.cuda(), 8, *cuda)
    assert not can_use_triton(x.cuda().double(), 8, *cuda)
    assert not can_use_triton(x.cuda(), 8, *params)  # params on the CPU
    big = torch.zeros(MAX_BLOCK // 8 * 2, 64, 5, device='cuda')
    assert not can_use_triton(big, 8, *cuda)  # one group too large
