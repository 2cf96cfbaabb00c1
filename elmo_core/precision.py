"""The precision vocabulary: how the head stores its weights and what that implies.

`fp8` (e4m3) and `bf16` are the low precisions: the head trains without an fp32 master copy
(stochastic rounding, optional Kahan compensation) and the encoder trains in pure BF16 with a
Kahan-summation AdamW. `fp32` is the full-precision baseline. Imports no torch: the config, the
memory planner and the service read this module; `storage_dtype` imports torch when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

Precision = Literal["fp8", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

KahanDtype = Literal["bf16", "e5m2"]
KAHAN_DTYPES: tuple[str, ...] = get_args(KahanDtype)

STORAGE_BYTES: dict[str, int] = {"fp8": 1, "bf16": 2, "fp32": 4}
"""Bytes per head weight in each precision's storage dtype."""
KAHAN_BYTES: dict[str, int] = {"bf16": 2, "e5m2": 1}
"""Bytes per element of a Kahan compensation buffer."""


def is_low_precision(precision: str) -> bool:
    """True for fp8 and bf16: no master weights, stochastic rounding, a pure-BF16 encoder."""
    return precision != "fp32"


def storage_dtype(precision: str) -> torch.dtype:
    """The torch dtype the head stores its weights in (e4m3, bf16 or fp32)."""
    import torch

    return {"fp8": torch.float8_e4m3fn, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def compensation_dtype(name: str) -> torch.dtype:
    """The torch dtype of a Kahan compensation buffer (bf16 or e5m2)."""
    import torch

    return {"bf16": torch.bfloat16, "e5m2": torch.float8_e5m2}[name]


def encoder_dtype(precision: str) -> torch.dtype:
    """The encoder's parameter dtype: pure BF16 in the low precisions, fp32 otherwise."""
    import torch

    return torch.bfloat16 if is_low_precision(precision) else torch.float32
