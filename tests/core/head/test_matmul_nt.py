"""`reference.matmul_nt`: the evaluation's fp32 product `a @ b.T` (oneDNN's matmul on the CPU where
torch has it), and `reference.matmul_tn`, the step's update product `a.T @ b` (the same matmul on
transposed copies), against fp64 products; other operands keep torch's `@`."""

from __future__ import annotations

import pytest
import torch

from elmo_core.head.reference import matmul_nt, matmul_tn


def _operands(rows: int, labels: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(rows * 1000 + labels)
    return torch.randn(rows, dim, generator=gen), torch.randn(labels, dim, generator=gen)


@pytest.mark.parametrize(("rows", "labels", "dim"), [(7, 11, 33), (64, 300, 513), (1, 5, 1)])
def test_fp32_product_is_within_fp32_accumulation_of_the_fp64_one(
    rows: int, labels: int, dim: int
) -> None:
    a, b = _operands(rows, labels, dim)
    got = matmul_nt(a, b)
    exact = a.double() @ b.double().T
    assert got.dtype == torch.float32 and got.shape == (rows, labels)
    # fp32 sums of `dim` products: each within dim * 2^-24 of the sum of the |products|
    bound = dim * 2.0**-24 * (a.double().abs() @ b.double().abs().T)
    assert bool(((got.double() - exact).abs() <= bound).all())


def test_strided_and_empty_operands() -> None:
    a, b = _operands(5, 12, 16)
    view = b[::2]  # every other weight row: not contiguous
    assert torch.allclose(matmul_nt(a, view), a @ view.T, rtol=1e-5, atol=1e-5)
    assert matmul_nt(a[:0], b).shape == (0, 12)
    assert matmul_nt(a, b[:0]).shape == (5, 0)


def test_other_dtypes_and_autograd_keep_torchs_product() -> None:
    a, b = _operands(4, 6, 8)
    a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
    assert torch.equal(matmul_nt(a16, b16), a16 @ b16.T)
    leaf = a.clone().requires_grad_(True)
    out = matmul_nt(leaf, b)
    out.sum().backward()
    assert leaf.grad is not None
    assert torch.allclose(leaf.grad, b.sum(dim=0).expand(4, 8), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "labels", "dim"), [(7, 11, 33), (256, 300, 513), (1, 5, 1)])
def test_update_product_is_within_fp32_accumulation_of_the_fp64_one(
    batch: int, labels: int, dim: int
) -> None:
    gen = torch.Generator().manual_seed(batch + labels)
    g, e = torch.randn(batch, labels, generator=gen), torch.randn(batch, dim, generator=gen)
    got = matmul_tn(g, e)
    exact = g.double().T @ e.double()
    assert got.dtype == torch.float32 and got.shape == (labels, dim) and got.is_contiguous()
    # fp32 sums of `batch` products: each within batch * 2^-24 of the sum of the |products|
    bound = batch * 2.0**-24 * (g.double().abs().T @ e.double().abs())
    assert bool(((got.double() - exact).abs() <= bound).all())
    kept = g[:, ::3]  # the kept columns of a step: a strided view
    assert bool(((matmul_tn(kept, e).double() - exact[::3]).abs() <= bound[::3]).all())
    assert matmul_tn(g[:0], e[:0]).abs().max() == 0  # an empty batch: zeros
    g16, e16 = g.to(torch.bfloat16), e.to(torch.bfloat16)
    assert torch.equal(matmul_tn(g16, e16), g16.T @ e16)
