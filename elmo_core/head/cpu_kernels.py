"""Fused numba kernels of the CPU backends' low-precision step (``cpu_fused_backend.py``: fp32
GEMMs; ``cpu_bf16_backend.py``: bf16 GEMMs).

Each replaces several torch passes over a chunk's ``B x C`` logits or ``C x d`` weights with one
pass that uses every core (``prange`` over rows) and gives the same bits:

- ``e4m3_to``: e4m3 weights as the bf16 or fp32 operand of the GEMMs (a 256-entry table of
  torch's own conversions);
- ``bce_gradient_``: ``G = bf16(sigmoid(Z) - Y)`` in place on the bf16 logits ``Z`` of the bf16
  GEMM, by two 2^16-entry tables (one per label value) computed once with torch's vectorised
  ``sigmoid``, ``- 1`` and ``.to(torch.bfloat16)``: the bits of torch's code on a tensor, except
  that torch computes the last few elements of each thread's range with its scalar ``exp`` (within
  an fp32 ulp of the vectorised one, so a G of those elements near a bf16 rounding boundary may
  round the other way there);
- ``round_gradient_``: the same ``G`` for fp32 logits, in place on ``S = sigmoid(Z)`` (torch's):
  ``S - 1`` at the positives, then every element rounded to bf16 and kept as fp32, the bits of
  the reference's ``sigmoid``, ``-= 1``, ``.to(bf16).to(fp32)``;
- ``column_peaks``: each column's largest ``|G|`` (bf16 or fp32 ``G``);
- ``sgd_round_``: the update of a chunk's weights from ``P = G^T E`` (the GEMM's bf16 or fp32
  result), ``W <- SR(W + U)`` with ``U = -lr (P + wd W)``, in the storage type (e4m3 or bf16).
  The fp32 arithmetic is that of the torch code it replaces: ``u = fl(-lr) * P``, then with
  weight decay ``u = fma(W, fl(-lr wd), u)`` (what ``u.add_(w, alpha=-lr * wd)`` computes),
  ``x = u + W``; and ``SR(x)`` draws the bits and applies the rules of ``rounding.py`` (its module
  docstring), so the stored weights are bit-identical to ``rounding.stochastic_round_`` of the
  same ``x``, stored as torch converts them. A NaN ``x`` is stored as torch's conversion of a NaN
  stores it (e4m3: ``0x7F`` with the NaN's sign; bf16: ``0xFFFF``); which NaN an addition of two
  NaNs propagates may differ from torch's.

The scalar rules (``row_bits``, ``element_bits``, ``sr_bf16``, ``sr_e4m3``, and ``e4m3_f32``,
which decodes a stored e4m3 byte by its bits as torch does, faster than a table) are numba
functions of their own, tested against the spec's numpy implementation and torch. Importing this
module imports numba (about 0.2 s); the backends import it at their first low-precision step. The
first call of each kernel in a fresh environment compiles it (seconds, ``docs/cpu_head.md``),
later processes load it from numba's cache.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numba import njit, prange

from elmo_core.float_bits import (
    MASK32,
    bf16_f32,
    bits_f32,
    f32_bf16,
    f32_bits,
    fma32,
    kernel,
    use_torch_threads,
)

E4M3_MIN_NORMAL_BITS = 0x3C800000
"""fp32 pattern of 2^-6, e4m3's smallest normal value."""
E4M3_MAX_BITS = 0x43E00000
"""fp32 pattern of 448, e4m3's largest finite value."""
E4M3_BIAS_SHIFT = (127 - 7) << 3
"""``(fp32 pattern >> 20) - this`` is the e4m3 byte of a normal value on e4m3's grid (and back)."""


@njit(inline="always")
def _fmix32(x: int) -> int:
    """murmur3's 32-bit finaliser of ``x`` (0 .. 2^32 - 1)."""
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & MASK32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & MASK32
    return x ^ (x >> 16)


@njit(inline="always")
def row_bits(row: int, seed: int) -> int:
    """The row part of the random bits: ``fmix32((row * 0x9E3779B1 + seed) mod 2^32)``."""
    return _fmix32((((row & MASK32) * 0x9E3779B1) + seed) & MASK32)


@njit(inline="always")
def element_bits(row_part: int, col: int) -> int:
    """The 32 random bits of element ``(row, col)`` from its row's ``row_bits``."""
    return _fmix32(row_part ^ ((col * 0x85EBCA77) & MASK32))


@njit(inline="always")
def sr_bf16(x: float, r: int) -> int:
    """``x`` stochastically rounded to bf16 with the bits ``r``: the 16-bit pattern."""
    if x != x:
        return 0xFFFF
    return ((f32_bits(x) + (r & 0xFFFF)) >> 16) & 0xFFFF


@njit(inline="always")
def sr_e4m3(x: float, r: int) -> int:
    """``x`` stochastically rounded to e4m3fn with the bits ``r``: the byte (saturating at 448,
    subnormals below 2^-6, the sign kept; NaN -> ``0x7F`` with its sign)."""
    bits = f32_bits(x)
    sign = (bits >> 24) & 0x80
    if x != x:
        return sign | 0x7F
    mag = min(bits & 0x7FFFFFFF, E4M3_MAX_BITS)
    if mag >= E4M3_MIN_NORMAL_BITS:
        return sign | (((mag + (r & 0xFFFFF)) >> 20) - E4M3_BIAS_SHIFT)
    q = bits_f32(mag) * np.float32(512.0)
    low = np.float32(np.int32(q))
    frac = (q - low) * np.float32(16777216.0)
    u = np.float32((r >> 8) & 0xFFFFFF) + np.float32(0.5)
    return sign | (int(low) + (1 if u < frac else 0))


@njit(inline="always")
def e4m3_f32(byte: int) -> float:
    """The e4m3fn ``byte`` as fp32, as torch converts it (NaN: ``0x7FF00000`` with its sign)."""
    m = int(byte) & 0x7F
    sign = (int(byte) & 0x80) << 24
    if m == 0x7F:
        return bits_f32(sign | 0x7FF00000)
    if m < 8:  # zero and the subnormals m * 2^-9
        return bits_f32(f32_bits(np.float32(m) * np.float32(1.0 / 512.0)) | sign)
    return bits_f32(((m + E4M3_BIAS_SHIFT) << 20) | sign)


@njit(inline="always")
def _sgd(w: float, p: float, neg_lr: float, neg_lr_wd: float, decay: bool) -> float:
    """``W + U`` with ``U = -lr (P + wd W)``, in the torch code's fp32 operations."""
    u = neg_lr * p
    if decay:
        u = fma32(w, neg_lr_wd, u)
    return u + w


@kernel
def _sgd_round_e4m3(w, rows, p, shift, neg_lr, neg_lr_wd, decay, seed, row0):
    for k in prange(rows.shape[0]):
        i = rows[k]
        h = row_bits(row0 + i, seed)
        for j in range(w.shape[1]):
            x = _sgd(e4m3_f32(w[i, j]), bits_f32(int(p[k, j]) << shift), neg_lr, neg_lr_wd, decay)
            w[i, j] = sr_e4m3(x, element_bits(h, j))


@kernel
def _sgd_round_bf16(w, rows, p, shift, neg_lr, neg_lr_wd, decay, seed, row0):
    for k in prange(rows.shape[0]):
        i = rows[k]
        h = row_bits(row0 + i, seed)
        for j in range(w.shape[1]):
            x = _sgd(bf16_f32(w[i, j]), bits_f32(int(p[k, j]) << shift), neg_lr, neg_lr_wd, decay)
            w[i, j] = sr_bf16(x, element_bits(h, j))


@kernel
def _lookup(src, table, out):
    for i in prange(src.shape[0]):
        for j in range(src.shape[1]):
            out[i, j] = table[src[i, j]]


@kernel
def _bce_gradient(z, rows, cols, negative, positive):
    pos = np.empty(rows.shape[0], np.uint16)
    for k in range(rows.shape[0]):
        pos[k] = positive[z[rows[k], cols[k]]]
    for i in prange(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = negative[z[i, j]]
    for k in range(rows.shape[0]):
        z[rows[k], cols[k]] = pos[k]


@kernel
def _round_gradient(s, rows, cols):
    for k in range(rows.shape[0]):
        s[rows[k], cols[k]] -= np.float32(1.0)
    for i in prange(s.shape[0]):
        for j in range(s.shape[1]):
            s[i, j] = bf16_f32(f32_bf16(s[i, j]))


@kernel
def _column_peaks(g, peaks, magnitude_mask):
    parts, cols = peaks.shape
    for t in prange(parts):
        own = peaks[t]
        own[:] = 0
        for i in range(t * g.shape[0] // parts, (t + 1) * g.shape[0] // parts):
            for j in range(cols):
                magnitude = g[i, j] & magnitude_mask
                if magnitude > own[j]:
                    own[j] = magnitude


@functools.cache
def _e4m3_table(dtype: torch.dtype) -> np.ndarray:
    """Each e4m3 byte as a bf16 or fp32 bit pattern, by torch's conversion (exact)."""
    e4m3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn)
    return _bits(e4m3.to(dtype))


@functools.cache
def _gradient_tables() -> tuple[np.ndarray, np.ndarray]:
    """``bf16(sigmoid(z))`` and ``bf16(sigmoid(z) - 1)`` for every bf16 pattern ``z``."""
    z = torch.from_numpy(np.arange(1 << 16, dtype=np.uint16)).view(torch.bfloat16)
    s = torch.sigmoid(z.to(torch.float32))
    negative = s.to(torch.bfloat16).view(torch.uint16)
    positive = (s - 1.0).to(torch.bfloat16).view(torch.uint16)
    return negative.numpy(), positive.numpy()


def _bits(t: torch.Tensor) -> np.ndarray:
    """A contiguous CPU tensor's storage as a numpy array of its unsigned bit patterns (shared)."""
    if not t.is_contiguous():
        raise ValueError("the CPU kernels take contiguous tensors")
    width = {1: torch.uint8, 2: torch.uint16, 4: torch.uint32}[t.element_size()]
    return t.view(width).numpy()


def e4m3_to(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The e4m3 matrix ``weight`` as a new bf16 or fp32 matrix (exact: every e4m3 value is one of
    either)."""
    if dtype not in (torch.bfloat16, torch.float32):
        raise ValueError(f"e4m3_to converts to bf16 or fp32, got {dtype}")
    out = torch.empty(weight.shape, dtype=dtype)
    use_torch_threads()
    _lookup(_bits(weight), _e4m3_table(dtype), _bits(out))
    return out


def column_peaks(g: torch.Tensor) -> torch.Tensor:
    """Each column's largest ``|G|`` of the bf16 or fp32 matrix ``g`` (B x C), in its dtype: the
    largest magnitude bits (a float's magnitude orders as its bits without the sign; a NaN column
    stays NaN), each thread taking a band of rows, then the bands' maximum."""
    if g.dtype not in (torch.bfloat16, torch.float32):
        raise ValueError(f"column_peaks takes a bf16 or fp32 matrix, got {g.dtype}")
    use_torch_threads()
    parts = max(1, min(torch.get_num_threads(), g.shape[0]))
    bits = _bits(g)
    peaks = np.empty((parts, g.shape[1]), bits.dtype)
    _column_peaks(bits, peaks, np.int64((1 << (8 * g.element_size() - 1)) - 1))
    return torch.from_numpy(peaks.max(axis=0)).view(g.dtype)


def bce_gradient_(z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``G = bf16(sigmoid(Z) - Y)`` in place on the bf16 logits ``z`` (B x C), ``Y`` 1 at the
    distinct positive pairs ``(rows, cols)`` (int64, ``cols`` within the chunk), 0 elsewhere.
    Returns ``z``."""
    negative, positive = _gradient_tables()
    use_torch_threads()
    _bce_gradient(_bits(z), rows.numpy(), cols.numpy(), negative, positive)
    return z


def round_gradient_(s: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``G = bf16(S - Y)`` as fp32 values in place on ``s``, the fp32 ``sigmoid(Z)`` (B x C),
    ``Y`` 1 at the distinct positive pairs ``(rows, cols)`` (int64, ``cols`` within the chunk).
    Returns ``s``."""
    if s.dtype != torch.float32:
        raise ValueError(f"round_gradient_ takes an fp32 matrix, got {s.dtype}")
    use_torch_threads()
    _round_gradient(s.numpy(), rows.numpy(), cols.numpy())
    return s


def sgd_round_(
    weight: torch.Tensor,
    product: torch.Tensor,
    lr: float,
    weight_decay: float,
    seed: int,
    row_offset: int,
    rows: torch.Tensor | None = None,
) -> None:
    """``W <- SR(W + U)`` with ``U = -lr (P + weight_decay W)`` in place on the e4m3 or bf16 rows
    ``weight`` (C x d), ``product`` the bf16 or fp32 ``P = G^T E`` (C x d); row ``i`` draws the
    bits of row ``row_offset + i`` with ``seed`` (see the module docstring). With ``rows``
    (distinct int64 row ids of ``weight``), ``product`` has one row per id and only those rows
    change."""
    shape = weight.shape if rows is None else (rows.shape[0], weight.shape[1])
    if product.dtype not in (torch.bfloat16, torch.float32) or product.shape != shape:
        raise ValueError("the product must be a bf16 or fp32 matrix of the updated rows' shape")
    args = (
        np.int64(32 - 8 * product.element_size()),
        np.float32(-lr),
        np.float32(-lr * weight_decay),
        bool(weight_decay),
        np.int64(seed),
        np.int64(row_offset),
    )
    if weight.dtype not in (torch.float8_e4m3fn, torch.bfloat16):
        raise ValueError(f"sgd_round_ updates e4m3 or bf16 weights, got {weight.dtype}")
    update = _sgd_round_e4m3 if weight.dtype == torch.float8_e4m3fn else _sgd_round_bf16
    ids = np.arange(weight.shape[0]) if rows is None else rows.numpy()
    use_torch_threads()
    update(_bits(weight), ids, _bits(product), *args)
