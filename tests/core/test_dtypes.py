"""`all_finite` reads finiteness from the bits of every float dtype the project stores."""

from __future__ import annotations

import pytest
import torch

from elmo_core.dtypes import all_finite

DTYPES = [
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz,
    torch.bfloat16,
    torch.float16,
    torch.float32,
    torch.float64,
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_byte_pattern_agrees_with_isfinite_in_float32(dtype: torch.dtype) -> None:
    """Each single value (every pattern of a one-byte dtype, a sweep of the others, the
    non-finite ones included) is judged as `torch.isfinite` of its exact fp32/fp64 value."""
    if torch.finfo(dtype).bits == 8:
        values = torch.arange(256, dtype=torch.uint8).view(dtype)
    else:
        special = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])
        values = torch.cat([special, torch.randn(200, generator=torch.Generator().manual_seed(0))])
        values = torch.cat([values, torch.tensor([torch.finfo(dtype).max])]).to(dtype)
    for value in values:
        expected = bool(torch.isfinite(value.to(torch.float64)))
        assert all_finite(value.reshape(1)) is expected, (dtype, value)
    assert all_finite(values) is bool(torch.isfinite(values.to(torch.float64)).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_bad_value_in_a_large_tensor_is_found(dtype: torch.dtype) -> None:
    tensor = torch.zeros(1000, 37).to(dtype)
    assert all_finite(tensor)
    tensor[613, 5] = float("nan")
    assert not all_finite(tensor)
    assert not all_finite(tensor.t())  # a non-contiguous view


def test_integer_tensors_are_refused() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        all_finite(torch.zeros(3, dtype=torch.uint8))
