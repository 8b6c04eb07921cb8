"""Weight Standardization semantics of checkpoints, and the exact
re-parametrization between them.

What a WS conv computes depends only on the standardized weight, and the
sources standardize differently from mmbcn's
default (``WS_SEMANTICS``): the BCN authors' ImageNet code divides by
``sqrt(var_unbiased + eps)`` (torch's ``Tensor.var`` is unbiased), mmcv's
``ConvWS`` by ``std_unbiased + eps``; mmbcn's ``eps_mode='var'`` by
``sqrt(var_biased + eps)``. Loading the stored weights unchanged into
``eps_mode='var'`` scales every standardized filter by about
``sqrt(n / (n - 1))`` (n: the filter's fan-in; 0.3 % for the 7x7 stem, 0.8 %
for a 64-input 1x1) plus the eps effect, which BCN's fixed batch statistics
do not absorb (in the tests the features then differ by far more than
1e-4). The converter therefore stores each filter ``W`` as
``W' = k (W - mean(W))``, with the one factor ``k`` for which the target
standardization of ``W'`` equals the source standardization of ``W``
exactly (a WS conv ignores the filter's mean; centering only spares float32
rounding):

    target 'var':  k = sqrt(eps_t / (D^2 - var_b(W)))
    target 'std':  k = eps_t / (D - std_u(W))

with ``D`` the source's denominator. For target ``'var'`` a solution exists
for every source (a standardized filter has biased variance < 1); for
target ``'std'`` it exists for the ``'std'`` and ``'var-unbiased'`` sources.
The gaps are computed in float64 in closed forms without cancellation, so
the converted network reproduces the source's features to float32 rounding.
Where source and target semantics agree the weights are copied unchanged
(``eps_mode='std'`` for the GN+WS source: bit-identical weights).
"""
import torch
from torch import Tensor

TARGET_EPS_MODES = ('var', 'std')
WS_SEMANTICS = {
    'var': 'biased variance, eps inside the root: (W - mean) / '
           "sqrt(var + eps) (mmbcn WSConv2d eps_mode='var')",
    'var-unbiased': 'unbiased variance, eps inside the root: (W - mean) / '
                    "sqrt(var_unbiased + eps) (the BCN authors' ImageNet "
                    'code)',
    'std': 'unbiased std, eps outside the root: (W - mean) / (std + eps) '
           "(mmcv ConvWS; mmbcn WSConv2d eps_mode='std')",
}

# --------------------------------------------------------------------------
def ws_rescale_factor(weight: Tensor, source: str, target: str = 'var',
                      source_eps: float = 1e-5,
                      target_eps: float = 1e-5) -> Tensor:
    """Per-filter factors ``k`` (float64, shape (C_out,)) such that the
    ``target`` standardization of ``k * weight`` equals the ``source``
    standardization of ``weight`` (see the module docstring).

    ``source``: a key of :data:`WS_SEMANTICS`; ``target``: ``'var'`` or
    ``'std'`` (mmbcn ``WSConv2d`` eps modes).
    """
    if source not in WS_SEMANTICS:
        raise ValueError(f'source WS semantics {source!r} is not valid; '
                         f'choose one of {tuple(WS_SEMANTICS)}')
    if target not in TARGET_EPS_MODES:
        raise ValueError(f'target eps_mode {target!r} is not valid; choose '
                         f'one of {TARGET_EPS_MODES}')
    flat = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)
    n = flat.shape[1]
    if n < 2 and (source != 'var' or target != 'var'):
        raise ValueError(f'a filter of fan-in {n} has no unbiased variance')
    dev = flat - flat.mean(1, keepdim=True)
    var_b = dev.pow(2).sum(1) / n
    extra = var_b / (n - 1) if n > 1 else torch.zeros_like(var_b)
    var_u = var_b + extra                       # unbiased variance
    es, et = float(source_eps), float(target_eps)
    if target == 'var':
        # gap = D^2 - var_b, D the source denominator
        if source == 'var':
            gap = torch.full_like(var_b, es)
        elif source == 'var-unbiased':
            gap = extra + es
        else:  # (std_u + eps)^2 - var_b
            gap = extra + 2 * es * var_u.sqrt() + es * es
        return (et / gap).sqrt()
    # target 'std': gap = D - std_u
    if source == 'std':
        gap = torch.full_like(var_b, es)
    elif source == 'var-unbiased':
        gap = es / ((var_u + es).sqrt() + var_u.sqrt())
    else:  # sqrt(var_b + eps) - sqrt(var_u)
        gap = (es - extra) / ((var_b + es).sqrt() + var_u.sqrt())
        if bool((gap <= 0).any()):
            raise ValueError(
                "eps_mode='std' cannot reproduce these weights: some "
                "standardized filters have unbiased std >= 1, which "
                "(W - mean) / (std + eps) never gives; use eps_mode='var'")
    return et / gap


def ws_reparametrize(weight: Tensor, source: str, target: str = 'var',
                     source_eps: float = 1e-5,
                     target_eps: float = 1e-5) -> Tensor:
    """``k * (weight - mean)`` per filter (:func:`ws_rescale_factor`), so
    that a ``WSConv2d`` with ``eps_mode=target`` computes what the source's
    WS conv computed; the unchanged weight (a copy) where the semantics
    agree."""
    if source == target and source_eps == target_eps:
        return weight.detach().clone()
    k = ws_rescale_factor(weight, source, target, source_eps, target_eps)
    shape = (-1, ) + (1, ) * (weight.dim() - 1)
    w = weight.detach().to(torch.float64)
    w = w - w.reshape(w.shape[0], -1).mean(1).view(shape)
    out = w * k.view(shape)
    if not bool(torch.isfinite(out).all()):
        raise ValueError('WS re-parametrization gave non-finite weights')
    return out.to(weight.dtype)
