"""The torch dtypes of the precision vocabulary (`elmo_core.precision`, which imports no torch)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from elmo_core.precision import KAHAN_DTYPE_NAMES, STORAGE_DTYPE_NAMES, is_low_precision


def storage_dtype(precision: str) -> torch.dtype:
    """The dtype the head stores its weights in: e4m3, bf16 or fp32."""
    return getattr(torch, STORAGE_DTYPE_NAMES[precision])


def compensation_dtype(name: str) -> torch.dtype:
    """The dtype of a Kahan compensation buffer: bf16 or e5m2."""
    return getattr(torch, KAHAN_DTYPE_NAMES[name])


def encoder_dtype(precision: str) -> torch.dtype:
    """The encoder's parameter dtype: pure BF16 in the low precisions, fp32 otherwise."""
    return torch.bfloat16 if is_low_precision(precision) else torch.float32


FINITE_BLOCK = 1 << 20
"""Elements `all_finite` tests at a time on the CPU: its temporaries stay in cache and are reused
by the allocator, where whole-tensor temporaries of a large table cost fresh pages every call."""


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of a floating-point tensor is finite, read from its bits where torch
    would convert (one- and two-byte floats): no fp32 copy of the tensor is made.

    A one-byte float is non-finite where its byte is one of the dtype's non-finite patterns
    (e4m3fn: the NaNs 0x7F/0xFF, i.e. ``b & 0x7F == 0x7F``; e5m2: ``b & 0x7C == 0x7C``, the
    exponent all ones), a two-byte float (bf16, fp16) where its exponent bits are all ones. A CPU
    tensor is read in blocks of `FINITE_BLOCK` elements, stopping at the first block with a
    non-finite value; other devices in one pass.
    """
    if not tensor.is_floating_point():
        raise TypeError(f"all_finite takes a floating-point tensor, got {tensor.dtype}")
    flat = tensor.detach().reshape(-1)
    has_non_finite = _non_finite_test(tensor)
    block = FINITE_BLOCK if tensor.device.type == "cpu" else max(1, flat.numel())
    return not any(
        has_non_finite(flat[start : start + block]) for start in range(0, flat.numel(), block)
    )


def _non_finite_test(tensor: torch.Tensor) -> Callable[[torch.Tensor], bool]:
    """Whether a flat block of `tensor`'s dtype holds a non-finite value (`all_finite`'s rule)."""
    if tensor.element_size() == 1:
        patterns = torch.arange(256, dtype=torch.uint8, device=tensor.device)
        bad = ~torch.isfinite(patterns.view(tensor.dtype).to(torch.float32))
        mask = 0x7F
        for pattern in patterns[bad].tolist():
            mask &= pattern
        if mask and torch.equal(bad, (patterns & mask) == mask):  # e4m3fn 0x7F, e5m2 0x7C
            return lambda block: bool(((block.view(torch.uint8) & mask) == mask).any())
        bad_patterns = patterns[bad]
        return lambda block: bool(torch.isin(block.view(torch.uint8), bad_patterns).any())
    if tensor.element_size() == 2:
        mantissa = -int(math.log2(torch.finfo(tensor.dtype).eps))
        exponent = ((1 << (15 - mantissa)) - 1) << mantissa
        return lambda block: bool(((block.view(torch.int16) & exponent) == exponent).any())
    return lambda block: not bool(torch.isfinite(block).all())
