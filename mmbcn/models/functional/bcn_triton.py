"""Triton kernels for BCN's micro-batch step on CUDA.

Same math as :class:`~mmbcn.models.functional.bcn.FixedStatsBCN` (see that
module's docstring): the batch stage with fixed statistics is a per-channel
affine, so ``y = A[n, c] x + B[n, c]`` and ``dx = P dy + Q x + R``, where the
(N, C) coefficients follow from per-(n, c) moments of ``x`` (forward) and
per-(n, c) sums of ``dy`` and ``dy x`` (backward).

On a GPU the passes over the activation are cheap; what costs is the O(N C)
arithmetic between them, some forty small torch ops per direction, each a
kernel launch. Here that arithmetic is one kernel per direction (one program
per channel group, all samples at once), the estimate update included:

    forward   channel_moments(x)  ->  _forward_coefficients  ->  addcmul
    backward  _row_sums  ->  _backward_coefficients  ->  _apply_rows
              (dx = P dy + Q x + R in one pass)

With ``update`` the coefficient kernel also moves the estimates by the
batch moments (``m``, ``v`` around the old estimate) at the rate
``max(r, 1 / (t + 1))`` (or ``r``), in place, before normalizing with them,
exactly as :meth:`BCN.update_estimates` does.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .bcn import channel_moments, grads_with_graph

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the torch path is used
    triton = None

# the coefficient kernels hold one group's (samples x channels) in registers
MAX_BLOCK = 8192


def has_triton() -> bool:
    return triton is not None


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def can_use_triton(x: Tensor, num_groups: int, *tensors: Tensor) -> bool:
    """Whether :func:`triton_micro_bcn` runs on ``x`` (N, C, L): Triton is
    importable, ``x`` is a float32 CUDA tensor, the other tensors are float32
    on its device, and one group of all samples fits one program."""
    if triton is None or x.device.type != 'cuda' or x.dtype != torch.float32:
        return False
    if not all(t.device == x.device and t.dtype == torch.float32
               for t in tensors):
        return False
    n, c = x.shape[0], x.shape[1]
    return _pow2(n) * _pow2(c // num_groups) <= MAX_BLOCK


if triton is not None:

    @triton.jit
    def _forward_coefficients(
            mean_ptr, var_ptr, est_mean_ptr, est_var_ptr, bw_ptr, bb_ptr,
            w_ptr, b_ptr, rate_ptr, steps_ptr, nc_out_ptr, c_out_ptr,
            rstd_ptr, N, C, G, K, W_DIV, eps, MOMENTS: tl.constexpr,
            UPDATE: tl.constexpr, AVERAGE_WARMUP: tl.constexpr,
            BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        # nc_out: (3, N, C) scale, offset, centre; c_out: (5, C) a, inv,
        # mean_inv, m, v
        scale_ptr = nc_out_ptr
        offset_ptr = nc_out_ptr + N * C
        centre_ptr = nc_out_ptr + 2 * N * C
        a_ptr = c_out_ptr
        inv_ptr = c_out_ptr + C
        mean_inv_ptr = c_out_ptr + 2 * C
        m_ptr = c_out_ptr + 3 * C
        v_ptr = c_out_ptr + 4 * C
        g = tl.program_id(0)
        n = tl.arange(0, BLOCK_N)
        k = tl.arange(0, BLOCK_K)
        mask_n = n < N
        mask_k = k < K
        c = g * K + k
        mask = mask_n[:, None] & mask_k[None, :]
        nc = n[:, None] * C + c[None, :]
        mean = tl.load(mean_ptr + nc, mask=mask, other=0.)
        var = tl.load(var_ptr + nc, mask=mask, other=0.)
        est_m = tl.load(est_mean_ptr + c, mask=mask_k, other=0.)
        est_v = tl.load(est_var_ptr + c, mask=mask_k, other=1.)
        if MOMENTS:
            # batch moments of the update: m, and v around the old estimate
            m = tl.sum(mean, axis=0) / N
            d = mean - est_m[None, :]
            v = tl.sum(tl.where(mask, var + d * d, 0.), axis=0) / N
            tl.store(m_ptr + c, m, mask=mask_k)
            tl.store(v_ptr + c, v, mask=mask_k)
            if UPDATE:
                rate = tl.load(rate_ptr)
                if AVERAGE_WARMUP:
                    steps = tl.load(steps_ptr).to(tl.float32) + 1.
                    rate = tl.maximum(rate, 1. / steps)
                est_m = est_m + rate * (m - est_m)
                est_v = est_v + rate * (v - est_v)
                tl.store(est_mean_ptr + c, est_m, mask=mask_k)
                tl.store(est_var_ptr + c, est_v, mask=mask_k)
        inv = 1. / tl.sqrt(est_v + eps)
        a = tl.load(bw_ptr + c, mask=mask_k, other=0.) * inv
        shift = tl.load(bb_ptr + c, mask=mask_k, other=0.) - a * est_m
        # moments of x1 = a x + shift per (n, c), pooled per (n, group)
        m1 = tl.where(mask, a[None, :] * mean + shift[None, :], 0.)
        v1 = tl.where(mask, a[None, :] * a[None, :] * var, 0.)
        mean_g = tl.sum(m1, axis=1) / K
        dev = tl.where(mask, m1 - mean_g[:, None], 0.)
        var_g = (tl.sum(v1, axis=1) + tl.sum(dev * dev, axis=1)) / K
        rstd = 1. / tl.sqrt(var_g + eps)
        centre = shift[None, :] - mean_g[:, None]
        w = tl.load(w_ptr + c // W_DIV, mask=mask_k, other=0.)
        b = tl.load(b_ptr + c // W_DIV, mask=mask_k, other=0.)
        rw = rstd[:, None] * w[None, :]
        tl.store(scale_ptr + nc, a[None, :] * rw, mask=mask)
        tl.store(offset_ptr + nc, centre * rw + b[None, :], mask=mask)
        tl.store(centre_ptr + nc, centre, mask=mask)
        tl.store(rstd_ptr + n * G + g, rstd, mask=mask_n)
        tl.store(a_ptr + c, a, mask=mask_k)
        tl.store(inv_ptr + c, inv, mask=mask_k)
        tl.store(mean_inv_ptr + c, est_m * inv, mask=mask_k)

    @triton.jit
    def _backward_coefficients(
            sums_ptr, mean_ptr, var_ptr, c_saved_ptr, centre_ptr, rstd_ptr,
            w_ptr, pqr_ptr, gbatch_ptr, gaffine_ptr, N, C, G, K, W_DIV,
            length, GROUP_AFFINE: tl.constexpr, BLOCK_N: tl.constexpr,
            BLOCK_K: tl.constexpr):
        # sums: (2, N, C) of dy and dy x; c_saved: (>= 3, C) a, inv,
        # mean_inv; pqr: (3, N, C); gbatch: (2, C); gaffine: (2, C or G)
        sdy_ptr = sums_ptr
        sdyx_ptr = sums_ptr + N * C
        a_ptr = c_saved_ptr
        inv_ptr = c_saved_ptr + C
        mean_inv_ptr = c_saved_ptr + 2 * C
        p_ptr = pqr_ptr
        q_ptr = pqr_ptr + N * C
        r_ptr = pqr_ptr + 2 * N * C
        gbw_ptr = gbatch_ptr
        gbb_ptr = gbatch_ptr + C
        gw_ptr = gaffine_ptr
        gb_ptr = gaffine_ptr + (G if GROUP_AFFINE else C)
        g = tl.program_id(0)
        n = tl.arange(0, BLOCK_N)
        k = tl.arange(0, BLOCK_K)
        mask_n = n < N
        mask_k = k < K
        c = g * K + k
        mask = mask_n[:, None] & mask_k[None, :]
        nc = n[:, None] * C + c[None, :]
        s_dy = tl.load(sdy_ptr + nc, mask=mask, other=0.)
        s_dyx = tl.load(sdyx_ptr + nc, mask=mask, other=0.)
        mean = tl.load(mean_ptr + nc, mask=mask, other=0.)
        var = tl.load(var_ptr + nc, mask=mask, other=0.)
        centre = tl.load(centre_ptr + nc, mask=mask, other=0.)
        rstd = tl.load(rstd_ptr + n * G + g, mask=mask_n, other=0.)[:, None]
        a = tl.load(a_ptr + c, mask=mask_k, other=0.)[None, :]
        inv = tl.load(inv_ptr + c, mask=mask_k, other=0.)
        mean_inv = tl.load(mean_inv_ptr + c, mask=mask_k, other=0.)
        w = tl.load(w_ptr + c // W_DIV, mask=mask_k, other=0.)[None, :]
        s_dy_xhat = rstd * (a * s_dyx + centre * s_dy)
        # group means of w dy and w dy xhat, per sample
        g1 = (tl.sum(w * s_dy, axis=1) / (length * K))[:, None]
        g2 = (tl.sum(w * s_dy_xhat, axis=1) / (length * K))[:, None]
        ar = a * rstd
        tl.store(p_ptr + nc, ar * w, mask=mask)
        tl.store(q_ptr + nc, -(ar * ar) * g2, mask=mask)
        tl.store(r_ptr + nc, -ar * (g1 + rstd * g2 * centre), mask=mask)
        # parameters, through dx1 = rstd (w dy - g1 - xhat g2), x1 = a x + s
        sum_xhat = length * rstd * (a * mean + centre)
        sum_xhat_x = length * rstd * a * var + mean * sum_xhat
        d_shift = tl.sum(tl.where(
            mask, rstd * (w * s_dy - length * g1 - g2 * sum_xhat), 0.),
            axis=0)
        d_a = tl.sum(tl.where(
            mask, rstd * (w * s_dyx - g1 * length * mean - g2 * sum_xhat_x),
            0.), axis=0)
        tl.store(gbw_ptr + c, d_a * inv - d_shift * mean_inv, mask=mask_k)
        tl.store(gbb_ptr + c, d_shift, mask=mask_k)
        gw = tl.sum(s_dy_xhat, axis=0)
        gb = tl.sum(s_dy, axis=0)
        if GROUP_AFFINE:
            tl.store(gw_ptr + g, tl.sum(gw, axis=0))
            tl.store(gb_ptr + g, tl.sum(gb, axis=0))
        else:
            tl.store(gw_ptr + c, gw, mask=mask_k)
            tl.store(gb_ptr + c, gb, mask=mask_k)

    @triton.jit
    def _row_sums(dy_ptr, x_ptr, out_ptr, ROWS, length, BLOCK: tl.constexpr):
        # out: (2, ROWS) sums of dy and dy x per row
        row = tl.program_id(0)
        base = row.to(tl.int64) * length
        acc_dy = tl.zeros([BLOCK], dtype=tl.float32)
        acc_dyx = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, length, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < length
            dy = tl.load(dy_ptr + base + offs, mask=mask, other=0.)
            x = tl.load(x_ptr + base + offs, mask=mask, other=0.)
            acc_dy += dy
            acc_dyx += dy * x
        tl.store(out_ptr + row, tl.sum(acc_dy, axis=0))
        tl.store(out_ptr + ROWS + row, tl.sum(acc_dyx, axis=0))

    @triton.jit
    def _apply_rows(dy_ptr, x_ptr, pqr_ptr, out_ptr, ROWS, length,
                    BLOCK: tl.constexpr):
        # out = p dy + q x + r, (p, q, r) = pqr[:, row]
        p_ptr = pqr_ptr
        q_ptr = pqr_ptr + ROWS
        r_ptr = pqr_ptr + 2 * ROWS
        row = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < length
        base = row.to(tl.int64) * length
        dy = tl.load(dy_ptr + base + offs, mask=mask, other=0.)
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.)
        p = tl.load(p_ptr + row)
        q = tl.load(q_ptr + row)
        r = tl.load(r_ptr + row)
        tl.store(out_ptr + base + offs, p * dy + q * x + r, mask=mask)


def _warps(block: int) -> int:
    return 1 if block <= 256 else 4 if block <= 2048 else 8


class TritonMicroBCN(torch.autograd.Function):
    """BCN with fixed batch-stage statistics on Triton kernels (see the
    module docstring); returns ``(y, m, v)``, ``m``/``v`` the batch moments
    (C,) of the update when ``moments`` (else left unwritten)."""

    @staticmethod
    def forward(ctx, x, est_mean, est_var, batch_weight, batch_bias, weight,
                bias, rate, steps, mean_nc, var_nc, num_groups, eps, moments,
                update, average_warmup):
        n, c, length = x.shape
        g = num_groups
        k = c // g
        if mean_nc is None:
            mean_nc, var_nc = channel_moments(x, impl='torch')
        per_nc = x.new_empty(3, n, c)  # scale, offset, centre
        per_c = x.new_empty(5, c)  # a, inv, mean_inv, m, v
        rstd = x.new_empty(n, g)
        block_n, block_k = _pow2(n), _pow2(k)
        _forward_coefficients[(g, )](
            mean_nc, var_nc, est_mean, est_var, batch_weight, batch_bias,
            weight, bias, rate, steps, per_nc, per_c, rstd, n, c, g, k,
            1 if weight.numel() == c else k, float(eps),
            MOMENTS=bool(moments), UPDATE=bool(update),
            AVERAGE_WARMUP=bool(average_warmup), BLOCK_N=block_n,
            BLOCK_K=block_k, num_warps=_warps(block_n * block_k))
        y = torch.addcmul(per_nc[1].unsqueeze(-1), x, per_nc[0].unsqueeze(-1))
        ctx.num_groups = g
        ctx.eps = eps
        # m and v take no gradient: no zero-filled grads for them
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, mean_nc, var_nc, per_c, per_nc, rstd,
                              batch_weight, batch_bias, weight, bias)
        m, v = per_c[3], per_c[4]
        ctx.mark_non_differentiable(m, v)
        return y, m, v

    @staticmethod
    def backward(ctx, dy, *_):
        if dy is None:  # y took no gradient
            return (None, ) * 16
        (x, mean_nc, var_nc, per_c, per_nc, rstd, *params
         ) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            grads = grads_with_graph(dy, x, per_c[1], per_c[2], params,
                                     ctx.num_groups, ctx.eps,
                                     ctx.needs_input_grad[:1] +
                                     ctx.needs_input_grad[3:7])
            return (grads[0], None, None, *grads[1:]) + (None, ) * 9
        weight = params[2]
        n, c, length = x.shape
        g = ctx.num_groups
        k = c // g
        dy = dy.contiguous()
        block = min(1024, _pow2(length))
        sums = x.new_empty(2, n, c)  # sums of dy and dy x per row
        _row_sums[(n * c, )](dy, x, sums, n * c, length, BLOCK=block,
                             num_warps=_warps(block))
        pqr = x.new_empty(3, n, c)
        grad_batch = x.new_empty(2, c)
        grad_affine = x.new_empty(2, weight.numel())
        block_n, block_k = _pow2(n), _pow2(k)
        _backward_coefficients[(g, )](
            sums, mean_nc, var_nc, per_c, per_nc[2], rstd, weight, pqr,
            grad_batch, grad_affine, n, c, g, k,
            1 if weight.numel() == c else k, float(length),
            GROUP_AFFINE=weight.numel() != c, BLOCK_N=block_n,
            BLOCK_K=block_k, num_warps=_warps(block_n * block_k))
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            _apply_rows[(n * c, triton.cdiv(length, block))](
                dy, x, pqr, grad_x, n * c, length, BLOCK=block,
                num_warps=_warps(block))
        grad_bw, grad_bb = grad_batch
        grad_w, grad_b = (t.view_as(weight) for t in grad_affine)
        needs = ctx.needs_input_grad
        return (grad_x, None, None, grad_bw if needs[3] else None,
                grad_bb if needs[4] else None, grad_w if needs[5] else None,
                grad_b if needs[6] else None, None, None, None, None, None,
                None, None, None, None)


def triton_micro_bcn(x: Tensor, est_mean: Tensor, est_var: Tensor,
                     batch_weight: Tensor, batch_bias: Tensor, weight: Tensor,
                     bias: Tensor, num_groups: int, eps: float,
                     moments: bool = False, update: bool = False,
                     rate: Optional[Tensor] = None,
                     steps: Optional[Tensor] = None,
                     average_warmup: bool = True,
                     mean_nc: Optional[Tensor] = None,
                     var_nc: Optional[Tensor] = None
                     ) -> Tuple[Tensor, Tensor, Tensor]:
    """Micro-batch BCN on an (N, C, L) input with the Triton kernels.

    ``moments``: also return the batch moments ``(m, v)`` of the update;
    ``update``: move ``est_mean``/``est_var`` in place by them at ``rate``
    (a 0-d tensor, the buffer ``update_rate``), as ``max(rate, 1 /
    (steps + 1))`` with ``average_warmup`` (``steps``: the 0-d
    ``num_batches_tracked``, which the caller increments), and normalize
    with the moved estimates. ``mean_nc``/``var_nc``: the per-(n, c)
    moments of ``x`` where the caller already has them (else computed
    here). Returns ``(y, m, v)``.
    """
    if triton is None:
        raise RuntimeError('triton_micro_bcn needs the triton package')
    if update and (rate is None or steps is None):
        raise ValueError('triton_micro_bcn: update=True needs rate and steps')
    if update and not moments:
        raise ValueError('triton_micro_bcn: update=True needs moments=True')
    dummy = est_mean
    return TritonMicroBCN.apply(
        x.contiguous(), est_mean, est_var, batch_weight, batch_bias, weight,
        bias, dummy if rate is None else rate,
        dummy if steps is None else steps, mean_nc, var_nc, num_groups, eps,
        moments, update, average_warmup)
