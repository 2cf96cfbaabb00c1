"""The torch dtypes of the precision vocabulary (`elmo_core.precision`, which imports no torch)."""

from __future__ import annotations

import math

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


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of a floating-point tensor is finite, read from its bits where torch
    would convert (one- and two-byte floats): no fp32 copy of the tensor is made.

    A one-byte float is non-finite where its byte is one of the dtype's non-finite patterns
    (e4m3fn: the NaNs 0x7F/0xFF, i.e. ``b & 0x7F == 0x7F``; e5m2: ``b & 0x7C == 0x7C``, the
    exponent all ones), a two-byte float (bf16, fp16) where its exponent bits are all ones.
    """
    if not tensor.is_floating_point():
        raise TypeError(f"all_finite takes a floating-point tensor, got {tensor.dtype}")
    flat = tensor.detach().reshape(-1)
    if tensor.element_size() == 1:
        patterns = torch.arange(256, dtype=torch.uint8, device=tensor.device)
        bad = ~torch.isfinite(patterns.view(tensor.dtype).to(torch.float32))
        mask = 0x7F
        for pattern in patterns[bad].tolist():
            mask &= pattern
        if mask and torch.equal(bad, (patterns & mask) == mask):  # e4m3fn 0x7F, e5m2 0x7C
            return not bool(((flat.view(torch.uint8) & mask) == mask).any())
        return not bool(torch.isin(flat.view(torch.uint8), patterns[bad]).any())
    if tensor.element_size() == 2:
        mantissa = -int(math.log2(torch.finfo(tensor.dtype).eps))
        exponent = ((1 << (15 - mantissa)) - 1) << mantissa
        return not bool(((flat.view(torch.int16) & exponent) == exponent).any())
    return bool(torch.isfinite(flat).all())
