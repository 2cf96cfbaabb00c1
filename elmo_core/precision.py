"""The precision vocabulary: how the head stores its weights and what that implies.

`fp8` (e4m3) and `bf16` are the low precisions: the head trains without an fp32 master copy
(stochastic rounding, optional Kahan compensation) and the encoder trains in pure BF16 with a
Kahan-summation AdamW. `fp32` is the full-precision baseline. Imports no torch: the config, the
memory planner and the service read this module; `elmo_core.dtypes` maps these names to torch
dtypes.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Precision = Literal["fp8", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

KahanDtype = Literal["bf16", "e5m2"]
KAHAN_DTYPES: tuple[str, ...] = get_args(KahanDtype)

STORAGE_BYTES: dict[str, int] = {"fp8": 1, "bf16": 2, "fp32": 4}
"""Bytes per head weight in each precision's storage dtype."""
KAHAN_BYTES: dict[str, int] = {"bf16": 2, "e5m2": 1}
"""Bytes per element of a Kahan compensation buffer."""
STORAGE_DTYPE_NAMES: dict[str, str] = {
    "fp8": "float8_e4m3fn",
    "bf16": "bfloat16",
    "fp32": "float32",
}
"""The torch dtype (by name) each precision stores the head in."""
KAHAN_DTYPE_NAMES: dict[str, str] = {"bf16": "bfloat16", "e5m2": "float8_e5m2"}
"""The torch dtype (by name) of each Kahan compensation buffer."""


def is_low_precision(precision: str) -> bool:
    """True for fp8 and bf16: no master weights, stochastic rounding, a pure-BF16 encoder."""
    return precision != "fp32"


def valid_below_floor_rate(rate: float) -> bool:
    """Whether ``rate`` is 0 or ``2^-k`` (``0 <= k <= 24``): scaling a bf16 ``G`` by its inverse
    is then exact."""
    if rate == 0.0:
        return True
    if not 0.0 < rate <= 1.0:
        return False
    mantissa, exponent = math.frexp(rate)
    return mantissa == 0.5 and -23 <= exponent <= 1
