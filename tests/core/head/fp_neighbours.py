"""Helpers of the head's CPU tests (imported by module name, like `upload_helpers`): every e4m3
value, and the representable neighbours of a value, in fp64."""

from __future__ import annotations

import torch


def e4m3_grid() -> torch.Tensor:
    """Every finite e4m3fn value, sorted, as float64 (-0.0 and +0.0 collapse to one 0)."""
    vals = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float64)
    return torch.unique(vals[torch.isfinite(vals)])


def neighbours(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The representable values of ``dtype`` just below and just above each fp64 ``x`` (equal if
    ``x`` is representable); e4m3 saturates at +-448. Computed without the code under test."""
    x = x.to(torch.float64)
    if dtype == torch.float8_e4m3fn:
        grid = e4m3_grid()
        xc = x.clamp(-448.0, 448.0)
        hi = torch.searchsorted(grid, xc).clamp(max=grid.numel() - 1)
        lo = torch.searchsorted(grid, xc, right=True).sub(1).clamp(min=0)
        return grid[lo], grid[hi]
    assert dtype == torch.bfloat16
    x32 = x.to(torch.float32)
    toward_zero = (x32.view(torch.int32) & -65536).view(torch.float32).to(torch.float64)
    exact = toward_zero == x
    step = (x32.view(torch.int32) & -65536) + 65536
    away = torch.where(exact, toward_zero, step.view(torch.float32).to(torch.float64))
    return torch.minimum(toward_zero, away), torch.maximum(toward_zero, away)
