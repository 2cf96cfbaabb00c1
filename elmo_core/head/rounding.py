"""Rounding fp32 into the head's storage types: stochastic (bf16, e4m3) and to nearest.

Stochastic rounding (SR) picks one of the two representable neighbours of ``x``: the one above
with probability ``(x - lo) / (hi - lo)``, so ``E[SR(x)] = x`` and updates far below the spacing
still move the weights on average. Exactly representable values stay exact.

The random bits are counter based, so a step is reproducible on any device and independent of
the chunking or launch shape. Element ``(row, col)`` of a step with seed ``seed`` draws the 32 bits

    x = fmix32((row * 0x9E3779B1 + seed) mod 2^32)
    r = fmix32(x XOR ((col * 0x85EBCA77) mod 2^32))

where ``fmix32`` is murmur3's finaliser (``x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13;
x *= 0xC2B2AE35; x ^= x >> 16``, all mod 2^32). ``row`` is the row of the whole weight matrix.
A head derives each step's ``seed`` from its own seed and step counter with ``step_seed``. The
Triton kernels (``triton_kernels.py``) implement the same bits and rounding with
``KernelConfig.reference_bits`` (by default a cheaper hash, equal in distribution). Here the
arithmetic is on int64 holding uint32 values; products wrap and are masked to their low 32 bits
(checked against numpy's uint64 in the tests).

fp32 -> bf16: add ``r & 0xFFFF`` to the fp32 bit pattern and clear the low 16 bits (an integer
carry moves into the exponent; NaN stays NaN, +-inf and signed zero are kept).

fp32 -> e4m3 (e4m3fn: no inf, max 448, normal for ``|x| >= 2^-6``, subnormal spacing ``2^-9``):
the sign is set aside and the magnitude clamped to 448 (saturation, also for inf). In the normal
range add ``r & 0xFFFFF`` to the magnitude's bit pattern and clear the low 20 bits (3 mantissa
bits remain; a carry moves into the exponent, and 448 + anything < 2^20 stays 448). In the
subnormal range (``|x| < 2^-6``) with ``q = |x| * 512``: ``floor(q) / 512``, plus ``1 / 512``
iff ``u < q - floor(q)`` where ``u = ((r >> 8) + 0.5) * 2^-24`` (fp32 arithmetic). The sign is put
back bitwise (``-0.0`` stays ``-0.0``); NaN stays NaN.

Kahan buffers (bf16 or e5m2) are rounded to nearest (``round_nearest``).
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
E4M3_MAX = 448.0
E4M3_MIN_NORMAL = 2.0**-6


def _mul32(a: torch.Tensor, m: int) -> torch.Tensor:
    """``a * m mod 2^32`` for int64 ``a`` in [0, 2^32) and ``m`` < 2^32: the int64 product wraps
    (two's complement, as torch computes it on CPU and CUDA) and its low 32 bits are exact."""
    return (a * m).bitwise_and_(MASK32)


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finaliser on int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x ^= x >> 13
    x = _mul32(x, 0xC2B2AE35)
    x ^= x >> 16
    return x


def random_bits(rows: torch.Tensor, cols: torch.Tensor, seed: int) -> torch.Tensor:
    """32 random bits (int64 in [0, 2^32)) per element of ``rows`` and ``cols`` broadcast together.

    ``rows``/``cols`` are integer tensors (e.g. ``rows[:, None]``, ``cols[None, :]``); ``seed`` an
    int in [0, 2^32). Integer arithmetic only, so every device gives the same bits.
    """
    r = rows.to(torch.int64) & MASK32
    c = cols.to(torch.int64) & MASK32
    x = _fmix32((_mul32(r, 0x9E3779B1) + (int(seed) & MASK32)) & MASK32)
    return _fmix32(x ^ _mul32(c, 0x85EBCA77))


def step_seed(seed: int, step: int) -> int:
    """Mix a head's seed and its step counter into the 31-bit seed of one step's random bits."""
    x = (seed * 0x9E3779B1 + step * 0x85EBCA77 + 0x27D4EB2F) & MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    return x & 0x7FFFFFFF


def _bits_of(x: torch.Tensor) -> torch.Tensor:
    """The fp32 bit pattern of ``x`` as int64 in [0, 2^32)."""
    return x.contiguous().view(torch.int32).to(torch.int64) & MASK32


def _float_of(bits: torch.Tensor) -> torch.Tensor:
    """The fp32 values of int64 bit patterns in [0, 2^32)."""
    signed = torch.where(bits >= 2**31, bits - 2**32, bits)
    return signed.to(torch.int32).view(torch.float32)


def sr_bf16(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """fp32 ``x`` stochastically rounded to bf16 values (kept in fp32) with random bits ``r``."""
    x = x.to(torch.float32)
    rounded = _float_of(((_bits_of(x) + (r & 0xFFFF)) & 0xFFFF0000) & MASK32)
    return torch.where(torch.isnan(x), x, rounded)


def sr_e4m3(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """fp32 ``x`` stochastically rounded to e4m3fn values (returned as fp32) with random bits ``r``:
    saturating at +-448, subnormals below 2^-6, signed zero and NaN kept."""
    x = x.to(torch.float32)
    sign = _bits_of(x) & 0x80000000
    mag = torch.clamp(x.abs(), max=E4M3_MAX)
    normal = _float_of((_bits_of(mag) + (r & 0xFFFFF)) & 0xFFF00000)
    q = mag * 512.0
    low = torch.floor(q)
    u = ((r >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
    sub = (low + (u < q - low).to(torch.float32)) * (1.0 / 512.0)
    res = torch.where(mag < E4M3_MIN_NORMAL, sub, normal)
    out = _float_of(_bits_of(res) | sign)
    return torch.where(torch.isnan(x), x, out)


def stochastic_round_values(x: torch.Tensor, dtype: torch.dtype, r: torch.Tensor) -> torch.Tensor:
    """``x`` rounded stochastically onto ``dtype``'s grid (bf16 or e4m3fn), kept in fp32."""
    if dtype == torch.bfloat16:
        return sr_bf16(x, r)
    if dtype == torch.float8_e4m3fn:
        return sr_e4m3(x, r)
    raise ValueError(f"stochastic rounding targets bfloat16 or float8_e4m3fn, got {dtype}")


def stochastic_round(
    x: torch.Tensor, dtype: torch.dtype, seed: int, row_offset: int = 0
) -> torch.Tensor:
    """Round fp32 ``x`` stochastically into ``dtype``; element ``(i, j)`` of ``x`` viewed as
    ``rows x cols`` (``cols`` = last dimension) draws the bits of ``(row_offset + i, j)``."""
    x = x.to(torch.float32)
    cols = x.shape[-1] if x.dim() else 1
    flat = x.reshape(-1, cols)
    rows = torch.arange(row_offset, row_offset + flat.shape[0], device=x.device)
    bits = random_bits(rows[:, None], torch.arange(cols, device=x.device)[None, :], seed)
    return stochastic_round_values(flat, dtype, bits).to(dtype).reshape(x.shape)


def round_nearest(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` rounded to nearest (ties to even) into ``dtype``; e4m3 saturates at +-448, e5m2 at
    its largest finite value (no overflow to inf or NaN); NaN stays NaN."""
    x = x.to(torch.float32)
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        big = torch.finfo(dtype).max
        x = torch.where(torch.isnan(x), x, x.clamp(-big, big))
    return x.to(dtype)
