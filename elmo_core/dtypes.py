"""The torch dtypes of the precision vocabulary (`elmo_core.precision`, which imports no torch)."""

from __future__ import annotations

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
