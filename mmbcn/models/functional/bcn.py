"""Autograd function behind BCN with fixed batch-stage statistics.

With fixed per-channel statistics (micro-batch estimates, or the running
estimates in eval) the batch stage is a per-channel affine of the input, and
BCN is a group normalization of that affine::

    a_c = gamma_b[c] / sqrt(var_hat[c] + eps)        x1 = a * x + s
    s_c = beta_b[c] - a_c * mu_hat[c]
    y   = w * (x1 - mean_g(x1)) / sqrt(var_g(x1) + eps) + b

The group statistics of ``x1`` follow from the per-(sample, channel) moments
of ``x`` (``m1 = a m + s``, ``v1 = a^2 v``, then the pooled mean and variance
of the group's channels), so ``y = A[n, c] * x + B[n, c]``. Forward: one
moment pass (shared with the estimate update) and one multiply-add pass.
Backward, with ``xhat = rstd (a x + s - mean_g)`` and group means ``g1 =
<w dy>``, ``g2 = <w dy xhat>``::

    dx = a rstd (w dy - g1 - xhat g2) = P dy + Q x + R        (per (n, c))

needs only the per-(n, c) sums of ``dy`` and ``dy x`` (one pass) and one
multiply-add pass; it saves ``x`` and O(N C) statistics, nothing else.

Two implementations of the passes, on the (N, C, L) input seen as N*C rows:

- ``'ext'``: mmbcn's C++ row kernels (``mmbcn._ext``, built at install,
  CPU float32/float64): every pass reads the activation once, like
  GroupNorm's own kernels;
- ``'torch'``: torch's fused native kernels, on any device: one broadcast
  ``addcmul`` applies the per-row affine, and batch-norm backward with zero
  mean and unit inverse std gives the sums of ``dy`` and ``dy x``. This is
  the path on GPU and the reference for ``'ext'``.

``impl='auto'`` picks ``'ext'`` where it applies, else ``'torch'``.

:class:`FusedMicroBCN` (``'ext'`` only) is the whole micro-batch layer step
in two C++ calls: the forward computes the moments, updates the estimates
and normalizes, one channel group at a time, and the backward does its two
passes one (sample, group) at a time, so that each block of the activation
is read from memory once per direction and found in cache by the second
pass (as torch's GroupNorm kernels do), and the O(N C) arithmetic between
the passes runs in C++ rather than as some forty small torch ops. Same
formulas as :class:`FixedStatsBCN` (which stays the path where the batch
moments must first be reduced across ranks, and on GPU).

Double backward (``create_graph=True``): when autograd asks for a backward
that is itself differentiable, the Functions (and the Triton one) compute
their gradients through :func:`differentiable_bcn`, the same fixed-statistics
math in torch ops, instead of the kernels.
"""
from typing import Tuple

import torch
from torch import Tensor

try:
    from mmbcn import _ext
except ImportError:  # built without the C++ kernels (MMBCN_WITH_EXT=0)
    _ext = None

IMPLS = ('auto', 'ext', 'torch')


def has_ext() -> bool:
    return _ext is not None


def resolve_impl(impl: str, x: Tensor) -> str:
    """The implementation ``impl`` means for input ``x``."""
    if impl not in IMPLS:
        raise ValueError(f'impl={impl!r} is not valid; choose one of {IMPLS}')
    usable = (_ext is not None and x.device.type == 'cpu'
              and x.dtype in (torch.float32, torch.float64))
    if impl == 'ext' and not usable:
        raise ValueError(
            "impl='ext' needs mmbcn's C++ kernels (pip install "
            '--no-build-isolation -e .) and a CPU float32/float64 input; '
            f'got a {x.dtype} tensor on {x.device} with the kernels '
            f'{"built" if _ext is not None else "not built"}')
    if impl == 'auto':
        return 'ext' if usable else 'torch'
    return impl


def channel_moments(x: Tensor, impl: str = 'auto') -> Tuple[Tensor, Tensor]:
    """Per-(sample, channel) mean and biased variance of an (N, C, L) input.

    ``'ext'``: one read, two passes per row in cache. ``'torch'``: torch's
    one-pass Welford reduction (``var_mean``): accurate for rows whose mean
    is large against their spread, and no host synchronization on GPU.
    """
    n, c, length = x.shape
    if resolve_impl(impl, x) == 'ext':
        mean, var = _ext.row_moments(x.reshape(n * c, length).contiguous())
        return mean.view(n, c), var.view(n, c)
    var, mean = torch.var_mean(x, dim=2, correction=0)
    return mean, var


def _affine_rows(x: Tensor, scale: Tensor, offset: Tensor,
                 impl: str) -> Tensor:
    """``scale[n, c] * x[n, c, :] + offset[n, c]`` in one fused pass.

    Returns a fresh tensor of N * C rows (not a view), shaped (N * C, L) or
    (1, N * C, L).
    """
    n, c, length = x.shape
    if impl == 'ext':
        return _ext.row_affine(x.reshape(n * c, length), scale.reshape(-1),
                               offset.reshape(-1))
    # one broadcast multiply-add kernel (offset + x * scale)
    return torch.addcmul(offset.reshape(1, n * c, 1),
                         x.reshape(1, n * c, length),
                         scale.reshape(1, n * c, 1))


def _row_sums(dy: Tensor, x: Tensor, impl: str) -> Tuple[Tensor, Tensor]:
    """Per-(n, c) sums of ``dy`` and ``dy * x`` in one fused pass."""
    n, c, length = x.shape
    if impl == 'ext':
        s_dy, s_dyx = _ext.row_sums(dy.reshape(n * c, length),
                                    x.reshape(n * c, length))
        return s_dy.view(n, c), s_dyx.view(n, c)
    zeros = x.new_zeros(n * c)
    ones = x.new_ones(n * c)
    _, s_dyx, s_dy = torch.ops.aten.native_batch_norm_backward(
        dy.reshape(1, n * c, length), x.reshape(1, n * c, length), ones,
        None, None, zeros, ones, True, 0.0, [False, True, True])
    return s_dy.view(n, c), s_dyx.view(n, c)


def per_channel(t: Tensor, channels: int) -> Tensor:
    """Broadcast a (..., G) per-group tensor to (..., C); no-op if per
    channel."""
    if t.shape[-1] == channels:
        return t
    groups = t.shape[-1]
    lead = list(t.shape[:-1])
    return t.unsqueeze(-1).expand(lead + [groups, channels // groups]) \
        .reshape(lead + [channels])


def _per_group(t: Tensor, groups: int) -> Tensor:
    """Sum a (..., C) tensor over the channels of each of the G groups."""
    return t.reshape(*t.shape[:-1], groups, -1).sum(-1)


def differentiable_bcn(x: Tensor, inv: Tensor, mean_inv: Tensor,
                       batch_weight: Tensor, batch_bias: Tensor,
                       weight: Tensor, bias: Tensor, num_groups: int,
                       eps: float) -> Tensor:
    """BCN with fixed batch statistics in plain torch ops, differentiable
    any number of times: ``inv = 1 / sqrt(var_hat + eps)`` and ``mean_inv =
    mu_hat * inv`` are constants, so ``x1 = gamma_b inv x + beta_b - gamma_b
    mean_inv``, then GroupNorm. ``x``: (N, C, L)."""
    c = x.shape[1]
    a = (batch_weight * inv).view(1, c, 1)
    shift = (batch_bias - batch_weight * mean_inv).view(1, c, 1)
    return torch.nn.functional.group_norm(
        x * a + shift, num_groups, per_channel(weight, c),
        per_channel(bias, c), eps)


def grads_with_graph(dy: Tensor, x: Tensor, inv: Tensor, mean_inv: Tensor,
                     params, num_groups: int, eps: float, needs):
    """The gradients of :func:`differentiable_bcn` for ``(x, batch_weight,
    batch_bias, weight, bias)`` (those ``needs`` asks for, else None), as
    differentiable functions of ``dy`` and the inputs: the backward of the
    fused Functions when autograd runs it with ``create_graph=True`` (a
    gradient penalty, double backward)."""
    inputs = (x, *params)
    wanted = [t for t, need in zip(inputs, needs) if need]
    with torch.enable_grad():
        y = differentiable_bcn(x, inv, mean_inv, *params, num_groups, eps)
        grads = iter(torch.autograd.grad(y, wanted, dy.reshape(y.shape),
                                         create_graph=True,
                                         allow_unused=True))
    out = []
    for t, need in zip(inputs, needs):
        g = next(grads) if need else None
        out.append(torch.zeros_like(t) if need and g is None else g)
    return out


class FixedStatsBCN(torch.autograd.Function):
    """``y = GroupNorm(a * x + s)`` with a, s from fixed batch statistics.

    Returns the output as N * C rows: a view made inside a custom Function
    could not be modified in place (an inplace ReLU after the norm), so the
    caller reshapes it.

    Inputs: ``x`` (N, C, L); ``mean_nc``/``var_nc`` (N, C) moments of ``x``
    (from :func:`channel_moments`); ``est_mean``/``est_var`` (C,) the batch
    statistics to normalize with (no gradient); ``batch_weight``/
    ``batch_bias`` (C,); ``weight``/``bias`` (G,) or (C,); ``num_groups``;
    ``eps``; ``impl`` (``'ext'`` or ``'torch'``, resolved).
    """

    @staticmethod
    def forward(ctx, x, mean_nc, var_nc, est_mean, est_var, batch_weight,
                batch_bias, weight, bias, num_groups, eps, impl):
        n, c, length = x.shape
        g = num_groups
        inv = torch.rsqrt(est_var + eps)
        a = batch_weight * inv
        shift = batch_bias - a * est_mean
        # moments of x1 = a * x + shift, per (n, c) then pooled per group
        m1 = (a * mean_nc + shift).view(n, g, -1)
        v1 = (a * a * var_nc).view(n, g, -1)
        mean_g = m1.mean(-1)
        var_g = v1.mean(-1) + (m1 - mean_g.unsqueeze(-1)).pow(2).mean(-1)
        rstd = per_channel(torch.rsqrt(var_g + eps), c)
        centre = shift - per_channel(mean_g, c)   # x1 - mean_g = a x + centre
        w = per_channel(weight, c)
        y = _affine_rows(x, a * rstd * w,
                         centre * rstd * w + per_channel(bias, c), impl)
        ctx.num_groups = g
        ctx.impl = impl
        ctx.group_affine = weight.shape[-1] != c
        # est_mean is a buffer that later steps update in place: save only
        # tensors made here.
        ctx.eps = eps
        ctx.save_for_backward(x, mean_nc, var_nc, a, inv, est_mean * inv,
                              centre, rstd, w, batch_weight, batch_bias,
                              weight, bias)
        return y

    @staticmethod
    def backward(ctx, dy):
        (x, mean_nc, var_nc, a, inv, mean_inv, centre, rstd, w,
         *params) = ctx.saved_tensors
        g = ctx.num_groups
        n, c, length = x.shape
        if torch.is_grad_enabled():  # create_graph=True
            needs = ctx.needs_input_grad
            gx, gbw, gbb, gw, gb = grads_with_graph(
                dy, x, inv, mean_inv, params, g, ctx.eps,
                (needs[0], *needs[5:9]))
            return (gx, None, None, None, None, gbw, gbb, gw, gb, None, None,
                    None)
        dy = dy.reshape(n, c, length).contiguous()
        impl = ctx.impl
        s_dy, s_dyx = _row_sums(dy, x, impl)
        s_dy_xhat = rstd * (a * s_dyx + centre * s_dy)   # sum_l dy * xhat
        group_size = length * (c // g)
        g1 = per_channel(_per_group(w * s_dy, g) / group_size, c)
        g2 = per_channel(_per_group(w * s_dy_xhat, g) / group_size, c)

        grad_x = grad_bw = grad_bb = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            p = a * rstd * w
            q = -(a * rstd).pow(2) * g2
            r = -a * rstd * (g1 + rstd * g2 * centre)
            if impl == 'ext':
                grad_x = _ext.row_affine2(
                    dy.view(n * c, length), x.view(n * c, length),
                    p.reshape(-1), q.reshape(-1),
                    r.reshape(-1)).view(n, c, length)
            else:
                grad_x = _affine_rows(dy, p, r, impl).view(n, c, length)
                grad_x.addcmul_(x, q.unsqueeze(-1))
        if ctx.needs_input_grad[5] or ctx.needs_input_grad[6]:
            # through dx1 = rstd (w dy - g1 - xhat g2), x1 = a x + shift
            sum_xhat = length * rstd * (a * mean_nc + centre)
            sum_xhat_x = length * rstd * a * var_nc + mean_nc * sum_xhat
            d_shift = (rstd * (w * s_dy - length * g1 - g2 * sum_xhat)).sum(0)
            d_a = (rstd * (w * s_dyx - g1 * length * mean_nc
                           - g2 * sum_xhat_x)).sum(0)
            grad_bw = d_a * inv - d_shift * mean_inv
            grad_bb = d_shift
        if ctx.needs_input_grad[7]:
            grad_w = s_dy_xhat.sum(0)
            if ctx.group_affine:
                grad_w = _per_group(grad_w, g)
        if ctx.needs_input_grad[8]:
            grad_b = s_dy.sum(0)
            if ctx.group_affine:
                grad_b = _per_group(grad_b, g)
        return (grad_x, None, None, None, None, grad_bw, grad_bb, grad_w,
                grad_b, None, None, None)


def fixed_stats_bcn(x, mean_nc, var_nc, est_mean, est_var, batch_weight,
                    batch_bias, weight, bias, num_groups, eps, impl='auto'):
    """Functional form of :class:`FixedStatsBCN`; returns (N, C, L)."""
    x = x.contiguous()
    y = FixedStatsBCN.apply(x, mean_nc, var_nc, est_mean, est_var,
                            batch_weight, batch_bias, weight, bias,
                            num_groups, eps, resolve_impl(impl, x))
    return y.view(x.shape)


class FusedMicroBCN(torch.autograd.Function):
    """Micro-batch BCN step on mmbcn's C++ kernels: estimate update and
    :class:`FixedStatsBCN` in one forward call, its backward in one call.

    Inputs: ``x`` (N, C, L) contiguous CPU float32/float64; ``est_mean`` /
    ``est_var`` (C,) the estimates before the step (not modified);
    ``batch_weight`` / ``batch_bias`` (C,); ``weight`` / ``bias`` (G,) or
    (C,); ``num_groups``; ``eps``; ``update`` (normalize with the estimates
    updated at ``rate`` by this batch, else with the given ones); ``rate``.

    Returns ``y`` (N, C, L) and, without gradient, ``new_mean`` /
    ``new_var`` (C,) (the estimates to store) and ``m`` / ``v`` (C,) (the
    batch moments of the update, ``v`` around the given ``est_mean``).
    """

    @staticmethod
    def forward(ctx, x, est_mean, est_var, batch_weight, batch_bias, weight,
                bias, num_groups, eps, update, rate):
        (y, mean_nc, var_nc, new_mean, new_var, m, v, a, inv, mean_inv,
         centre, rstd) = _ext.bcn_forward(x, est_mean, est_var, batch_weight,
                                          batch_bias, weight, bias,
                                          num_groups, eps, update, rate)
        ctx.num_groups = num_groups
        ctx.eps = eps
        ctx.save_for_backward(x, mean_nc, var_nc, a, inv, mean_inv, centre,
                              rstd, batch_weight, batch_bias, weight, bias)
        ctx.mark_non_differentiable(new_mean, new_var, m, v)
        return y, new_mean, new_var, m, v

    @staticmethod
    def backward(ctx, dy, *_):
        (x, mean_nc, var_nc, a, inv, mean_inv, centre, rstd, *params
         ) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            grads = grads_with_graph(dy, x, inv, mean_inv, params,
                                     ctx.num_groups, ctx.eps,
                                     ctx.needs_input_grad[:1] +
                                     ctx.needs_input_grad[3:7])
            return (grads[0], None, None, *grads[1:], None, None, None,
                    None)
        weight = params[2]
        grad_x, grad_bw, grad_bb, grad_w, grad_b = _ext.bcn_backward(
            dy, x, mean_nc, var_nc, a, inv, mean_inv, centre, rstd, weight,
            ctx.num_groups, ctx.needs_input_grad[0])
        needs = ctx.needs_input_grad
        return (grad_x if needs[0] else None, None, None,
                grad_bw if needs[3] else None,
                grad_bb if needs[4] else None,
                grad_w if needs[5] else None,
                grad_b if needs[6] else None, None, None, None, None)


def can_fuse(x: Tensor, *tensors: Tensor) -> bool:
    """Whether :func:`fused_micro_bcn` runs on ``x`` with these parameters
    and estimates: the C++ kernels are built, ``x`` is a CPU float32/float64
    tensor and every tensor has its device and dtype."""
    return (_ext is not None and x.device.type == 'cpu'
            and x.dtype in (torch.float32, torch.float64)
            and all(t.device == x.device and t.dtype == x.dtype
                    for t in tensors))


def _check_fused_shapes(x, est_mean, est_var, batch_weight, batch_bias,
                        weight, bias, num_groups) -> None:
    """The kernels' shape rules, checked here so that a bad call is a
    ValueError naming the rule (the C++ checks are a second line)."""
    if x.dim() != 3 or x.shape[0] < 1 or x.shape[2] < 1:
        raise ValueError('fused_micro_bcn: x must be (N, C, L) with N, L >= '
                         f'1, got shape {tuple(x.shape)}')
    c = x.shape[1]
    if num_groups < 1 or c % num_groups:
        raise ValueError(f'fused_micro_bcn: num_groups ({num_groups}) must '
                         f'divide the channels ({c})')
    for name, t in (('est_mean', est_mean), ('est_var', est_var),
                    ('batch_weight', batch_weight),
                    ('batch_bias', batch_bias)):
        if t.numel() != c:
            raise ValueError(f'fused_micro_bcn: {name} needs one value per '
                             f'channel ({c}), got {t.numel()}')
    for name, t in (('weight', weight), ('bias', bias)):
        if t.numel() not in (c, num_groups):
            raise ValueError(
                f'fused_micro_bcn: {name} needs one value per group '
                f'({num_groups}) or per channel ({c}), got {t.numel()}')
    if weight.numel() != bias.numel():
        raise ValueError('fused_micro_bcn: weight and bias must have the '
                         f'same size, got {weight.numel()} and {bias.numel()}')


def fused_micro_bcn(x, est_mean, est_var, batch_weight, batch_bias, weight,
                    bias, num_groups, eps, update=False, rate=0.):
    """Functional form of :class:`FusedMicroBCN` on an (N, C, L) input;
    returns ``(y, new_mean, new_var, m, v)``, ``y`` shaped (N, C, L)."""
    if not can_fuse(x, est_mean, est_var, batch_weight, batch_bias, weight,
                    bias):
        raise ValueError(
            'fused_micro_bcn needs mmbcn\'s C++ kernels and CPU float32/'
            'float64 tensors of one dtype; got x '
            f'{x.dtype} on {x.device}, kernels '
            f'{"built" if _ext is not None else "not built"}')
    _check_fused_shapes(x, est_mean, est_var, batch_weight, batch_bias,
                        weight, bias, num_groups)
    return FusedMicroBCN.apply(x.contiguous(), est_mean, est_var,
                               batch_weight, batch_bias, weight, bias,
                               num_groups, float(eps), bool(update),
                               float(rate))
