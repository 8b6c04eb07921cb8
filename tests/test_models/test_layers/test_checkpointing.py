"""Activation checkpointing (mmdet / mmseg ``with_cp=True``): with torch's
reentrant and non-reentrant checkpointing, outputs, every gradient and every
estimate equal the run without it, and the estimates move once per step."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from norm_cases import NORMS, build_norm


class Block(nn.Module):
    """conv - norm - in-place ReLU - conv - norm, plus the identity; as a
    ResNet BasicBlock, the in-place ReLU after the block is applied to the
    checkpoint's output."""

    def __init__(self, case, with_cp=None):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.norm1 = build_norm(case, 8, seed=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.norm2 = build_norm(case, 8, seed=2)
        self.with_cp = with_cp

    def inner(self, x):
        out = torch.relu_(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        out += x
        return out

    def forward(self, x):
        if self.with_cp is None:
            out = self.inner(x)
        else:
            out = cp.checkpoint(self.inner, x, use_reentrant=self.with_cp)
        return torch.relu_(out)


def run(model, steps=3, dtype=torch.float32):
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(3)
    outs = []
    for _ in range(steps):
        x = (torch.randn(2, 8, 6, 6, generator=gen) * 2 + 1).to(dtype)
        x.requires_grad_()
        y = model(x)
        weights = torch.randn(y.shape, generator=gen).to(dtype)
        (y * weights).sum().backward()
        outs.append((y.detach(), x.grad))
    return outs


@pytest.mark.parametrize('reentrant', [True, False])
@pytest.mark.parametrize('case', sorted(NORMS))
def test_checkpointed_block_equals_plain(case, reentrant):
    plain, ckpt = Block(case), Block(case, with_cp=reentrant)
    for (y, gx), (y_cp, gx_cp) in zip(run(plain), run(ckpt)):
        torch.testing.assert_close(y_cp, y, rtol=0, atol=1e-6)
        torch.testing.assert_close(gx_cp, gx, rtol=0, atol=1e-6)
    for (name, p), p_cp in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p_cp.grad, p.grad, rtol=0, atol=1e-6,
                                   msg=name)
    # the estimates moved once per step, as without checkpointing
    for (name, b), b_cp in zip(plain.named_buffers(), ckpt.buffers()):
        torch.testing.assert_close(b_cp, b, rtol=0, atol=1e-6, msg=name)
        if name.endswith('num_batches_tracked') and 'deferred' not in case:
            assert int(b_cp) == 3, name
    if 'deferred' in case:  # one queued update per step
        assert len(ckpt.norm1.deferred) == len(plain.norm1.deferred) == 3


@pytest.mark.parametrize('reentrant', [True, False])
def test_checkpointed_torch_path_equals_plain(reentrant):
    """bfloat16 runs BCN on its torch ops (the path used on GPU without
    Triton): same contract."""
    plain, ckpt = Block('bcn-micro'), Block('bcn-micro', with_cp=reentrant)
    for (y, gx), (y_cp, gx_cp) in zip(run(plain, dtype=torch.bfloat16),
                                      run(ckpt, dtype=torch.bfloat16)):
        torch.testing.assert_close(y_cp, y, rtol=0, atol=0)
        torch.testing.assert_close(gx_cp, gx, rtol=0, atol=0)
    for b, b_cp in zip(plain.buffers(), ckpt.buffers()):
        torch.testing.assert_close(b_cp, b, rtol=0, atol=0)


def test_recomputation_normalizes_with_the_first_forwards_estimates():
    """Shared layer called twice inside one checkpointed function: each
    recomputation uses the estimates of its own first forward."""
    norm = build_norm('bcn-micro', 8)
    ref = copy.deepcopy(norm)

    def twice(x):
        return norm(norm(x) * 2)

    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    cp.checkpoint(twice, x, use_reentrant=False).sum().backward()
    (ref(ref(x_ref) * 2)).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(norm.running_mean, ref.running_mean)
    assert int(norm.num_batches_tracked) == 2
    assert not norm._replay  # nothing left over after the backward


def test_no_estimates_kept_without_checkpointing():
    norm = build_norm('bcn-micro', 8)
    for _ in range(3):
        norm(torch.randn(2, 8, 4, 4, requires_grad=True)).sum().backward()
    assert not norm._replay
