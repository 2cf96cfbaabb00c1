"""The fused CPU kernel of `RowSparseAdamW` (numba): a touched row's AdamW in one pass.

`adamw_rows_` sums each touched row's gradient entries and updates its weights, `exp_avg`,
`exp_avg_sq` (and `kahan_comp`) in place in the parameter's dtype (fp32, or bf16 read and written
as its bit patterns), `prange` over the rows: one read and one write of each state row, where the
torch code it replaced gathered, converted, updated and scattered them in about 15 passes. The
entries of a row are summed in fp32 in their order in the gradient, from +0.0 (as `index_add_`
into zeros does), and the fp32 operations are the torch code's, in its order and rounding:

    m = fl(m * b1) + fl((1 - b1) * g)        stored: m = bf16(m) (bf16 parameter)
    v = fl(v * b2) + fl(fl((1 - b2) * g) * g) stored: v = bf16(v)
    u = m / (sqrt(v) + eps)                  from the stored moments
    w = w * fl(1 - lr * wd)                  with weight decay only
    w = fma(u, fl(-lr), w)                   what `w.add_(u, alpha=-lr)` computes
    Kahan: w = w + c; p = bf16(w); c = bf16(w - p)    else p = bf16(w)

`b1`, `b2` are each row's debiased betas (fp32, computed by the caller), `bf16` rounds to
nearest-even as torch's `.to(torch.bfloat16)` does (`float_bits.f32_bf16`). One operation differs:
`sqrt` here is IEEE's (correctly rounded), while torch's CPU `sqrt_` (MKL's vector maths in this
build) is off by one ulp for about 17% of fp32 inputs. The moments are therefore bit-identical to
the torch code's, and `u` may differ by an fp32 ulp, which moves a few weights per step by one
bf16 step (measured on the debian-deps n-gram table: at most 5 of about 5M updated weights per
step, and the Kahan buffer's low bits); with an IEEE `sqrt` the torch code gives these bits
exactly (`tests/core/training/test_row_sparse_adamw.py`). Importing this module imports numba;
`RowSparseAdamW` imports it at its first CPU step.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import prange, types
from numba.extending import overload

from elmo_core.float_bits import bf16_f32, f32_bf16, fma32, kernel, use_torch_threads

ROWS_PER_TASK = 64
"""Rows per parallel task (each task has its own fp32 gradient row)."""


def _load(v: object) -> float:
    """An element (fp32, or a bf16 pattern) as fp32; implemented for numba by its overload."""
    raise NotImplementedError


def _store(x: float, like: object) -> object:
    """fp32 ``x`` as an element of ``like``'s type (bf16: rounded to nearest-even); for numba."""
    raise NotImplementedError


@overload(_load)
def _load_impl(v):
    if v == types.uint16:
        return lambda v: bf16_f32(v)
    if v == types.float32:
        return lambda v: v
    return None


@overload(_store)
def _store_impl(x, like):
    if like == types.uint16:
        return lambda x, like: np.uint16(f32_bf16(x))
    if like == types.float32:
        return lambda x, like: x
    return None


@kernel
def _adamw_rows(
    param,
    exp_avg,
    exp_avg_sq,
    comp,
    rows,
    starts,
    order,
    values,
    beta1_hat,
    beta2_hat,
    neg_lr,
    decay,
    decay_factor,
    eps,
):
    n, dim = rows.shape[0], param.shape[1]
    one = np.float32(1.0)
    for task in prange((n + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        grad = np.empty(dim, np.float32)
        for i in range(task * ROWS_PER_TASK, min(n, (task + 1) * ROWS_PER_TASK)):
            for j in range(dim):
                grad[j] = np.float32(0.0)
            for k in range(starts[i], starts[i + 1]):
                src = order[k]
                for j in range(dim):
                    grad[j] += _load(values[src, j])
            r = rows[i]
            b1, b2 = beta1_hat[i], beta2_hat[i]
            c1, c2 = one - b1, one - b2
            for j in range(dim):
                g = grad[j]
                m = _store(_load(exp_avg[r, j]) * b1 + c1 * g, exp_avg[r, j])
                v = _store(_load(exp_avg_sq[r, j]) * b2 + (c2 * g) * g, exp_avg_sq[r, j])
                exp_avg[r, j] = m
                exp_avg_sq[r, j] = v
                u = _load(m) / (np.sqrt(_load(v)) + eps)
                w = _load(param[r, j])
                if decay:
                    w = w * decay_factor
                w = fma32(u, neg_lr, w)
                if comp is not None:
                    w = w + _load(comp[r, j])
                    rounded = _store(w, param[r, j])
                    comp[r, j] = _store(w - _load(rounded), comp[r, j])
                    param[r, j] = rounded
                else:
                    param[r, j] = _store(w, param[r, j])


def _array(t: torch.Tensor) -> np.ndarray:
    """A contiguous CPU tensor as numpy (shared memory); bf16 as its uint16 bit patterns."""
    t = t.detach()
    if not t.is_contiguous():
        raise ValueError("the row-sparse kernel takes contiguous tensors")
    return (t.view(torch.uint16) if t.dtype == torch.bfloat16 else t).numpy()


def adamw_rows_(
    param: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    kahan_comp: torch.Tensor | None,
    rows: torch.Tensor,
    starts: torch.Tensor,
    order: torch.Tensor,
    values: torch.Tensor,
    beta1_hat: torch.Tensor,
    beta2_hat: torch.Tensor,
    *,
    lr: float,
    weight_decay: float,
    eps: float,
) -> None:
    """AdamW in place on the rows ``rows`` (int64, distinct) of the fp32 or bf16 CPU table
    ``param`` and of its states (``param``'s dtype and shape; ``kahan_comp`` None: no Kahan).
    Row ``rows[i]``'s gradient is the fp32 sum of ``values[order[k]]`` (``values``: fp32 or
    ``param``'s dtype) for ``k`` in ``starts[i] .. starts[i + 1] - 1`` (int64), its debiased betas
    ``beta1_hat[i]``, ``beta2_hat[i]`` (fp32). See the module docstring."""
    if param.dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"adamw_rows_ updates fp32 or bf16 tables, got {param.dtype}")
    use_torch_threads()
    _adamw_rows(
        _array(param),
        _array(exp_avg),
        _array(exp_avg_sq),
        None if kahan_comp is None else _array(kahan_comp),
        _array(rows),
        _array(starts),
        _array(order),
        _array(values),
        _array(beta1_hat),
        _array(beta2_hat),
        np.float32(-lr),
        bool(weight_decay),
        np.float32(1 - lr * weight_decay),
        np.float32(eps),
    )
