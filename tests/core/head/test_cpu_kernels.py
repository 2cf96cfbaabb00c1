"""The numba kernels of the cpu-bf16 backend (elmo_core.head.cpu_kernels, elmo_core.float_bits)
against the torch code they replace and against the rounding spec: bit for bit.

NaNs: torch stores every NaN as bf16 ``0xFFFF`` on x86 (its vectorised conversion), the kernels
too; the comparisons check NaN positions and the exact bits of everything else, so that they hold
for another conversion of NaN as well.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from numba import njit
from test_rounding import _edge_case_matrix, _numpy_bits, _numpy_stochastic_round

from elmo_core import float_bits
from elmo_core.head import cpu_kernels, rounding
from elmo_core.head.reference import sorted_positives, upcast

E4M3, BF16 = torch.float8_e4m3fn, torch.bfloat16


@njit
def _round_matrix(x, row_offset, seed, e4m3, out):  # type: ignore[no-untyped-def]
    """The kernels' scalar rounding of every element of the fp32 matrix ``x`` into ``out``."""
    for i in range(x.shape[0]):
        h = cpu_kernels.row_bits(row_offset + i, seed)
        for j in range(x.shape[1]):
            r = cpu_kernels.element_bits(h, j)
            out[i, j] = cpu_kernels.sr_e4m3(x[i, j], r) if e4m3 else cpu_kernels.sr_bf16(x[i, j], r)


@njit
def _map_scalars(a, b, c, out32, out16, out_e4m3):  # type: ignore[no-untyped-def]
    """fma32(a, b, c), f32_bf16(a) and e4m3_f32 of the low byte of a's index, elementwise."""
    for i in range(a.shape[0]):
        out32[i] = float_bits.fma32(a[i], b, c[i])
        out16[i] = float_bits.f32_bf16(a[i])
        out_e4m3[i] = cpu_kernels.e4m3_f32(np.uint8(i & 0xFF))


def _same_bits(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal bit patterns, except that any NaN matches any NaN (same positions)."""
    g, w = got.to(torch.float32), want.to(torch.float32)
    nan = torch.isnan(w)
    if not torch.equal(torch.isnan(g), nan):
        return False
    width = torch.uint8 if got.element_size() == 1 else torch.uint16
    if got.element_size() == 4:
        return torch.equal(got.view(torch.int32)[~nan], want.view(torch.int32)[~nan])
    return torch.equal(got.view(width)[~nan], want.view(width)[~nan])


@pytest.mark.parametrize("dtype", [BF16, E4M3])
def test_scalar_rounding_is_bit_identical_to_the_spec_and_the_torch_path(dtype):
    # the cases of test_blockwise_rounding_is_bit_identical_to_the_spec: rows wrapping past
    # 2^32, seeds up to 2^32 - 1, NaNs, infs, subnormals, both grids, the 2^-6 boundary
    for rows, cols, row_offset, seed in [
        (700, 97, 2**32 - 300, 2**32 - 1),
        (300, 256, 1234, rounding.step_seed(7, 2)),
        (9, 1, 0, 0),
    ]:
        x = _edge_case_matrix(rows, cols, seed=rows)
        r = _numpy_bits(np.arange(row_offset, row_offset + rows) % 2**32, np.arange(cols), seed)
        want = torch.from_numpy(_numpy_stochastic_round(x.numpy(), dtype, r)).to(dtype)
        stored = torch.empty(rows, cols, dtype=dtype)
        rounding.stochastic_round_(x.clone(), dtype, seed, row_offset, out=stored)
        got = torch.empty(rows, cols, dtype=dtype)
        _round_matrix(x.numpy(), row_offset, seed, dtype == E4M3, cpu_kernels._bits(got))
        assert _same_bits(got, want)
        assert _same_bits(got, stored)


def _weights(rows: int, cols: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Random weights of rms about 1 with edge values: 0, -0, the largest, e4m3 subnormals."""
    w = torch.randn(rows, cols, generator=gen) * torch.exp2(
        torch.randint(-12, 4, (rows, cols), generator=gen).float()
    )
    edges = torch.tensor([0.0, -0.0, 448.0, -448.0, 2.0**-9, -(2.0**-7), 3e38, -3e38])
    flat = w.view(-1)
    where = torch.randperm(flat.numel(), generator=gen)[: 4 * edges.numel()]
    flat[where] = edges.repeat(4)[: where.numel()]
    return rounding.round_nearest(w, dtype)


def _torch_update(w, product, lr, wd, seed, row_offset):  # type: ignore[no-untyped-def]
    """The torch code ``sgd_round_`` replaced (CpuBf16Backend before the kernels)."""
    w32 = upcast(w)
    upd = product.to(torch.float32, copy=True).mul_(-lr)
    if wd:
        upd.add_(w32, alpha=-lr * wd)
    out = torch.empty_like(w)
    rounding.stochastic_round_(upd.add_(w32), w.dtype, seed, row_offset, out=out)
    return out


@pytest.mark.parametrize("product_dtype", [BF16, torch.float32])
@pytest.mark.parametrize("dtype", [BF16, E4M3])
def test_sgd_round_equals_the_torch_update_and_rounding(dtype, product_dtype):
    gen = torch.Generator().manual_seed(3)
    for rows, cols, row_offset, seed, lr, wd in [
        (700, 97, 2**32 - 300, 2**32 - 1, 0.37, 0.0),  # odd widths: torch's scalar tails
        (513, 256, 1234, rounding.step_seed(7, 2), 2.0**-3, 1e-2),
        (3, 1, 0, 0, 1e-30, 5.0),
        (64, 33, 9, 77, 1e4, 0.1),  # large steps: saturation, inf products
    ] + [(4096, 1024, 5, 11, 0.3, 0.7)] * (dtype == BF16):
        # the last: 4M weights, so that an fp32 ulp of x (an unfused weight decay, say) shows
        # where it moves a stochastic rounding (probability 2^-16 per bf16 weight)
        w = _weights(rows, cols, dtype, gen)
        product = (torch.randn(rows, cols, generator=gen) * 4).to(product_dtype)
        edges = torch.tensor([0.0, -0.0, 3e38, -3e38, 1e-40, float("inf")])[: rows * cols]
        product.view(-1)[: edges.numel()] = edges.to(product_dtype)
        want = _torch_update(w, product, lr, wd, seed, row_offset)
        got = w.clone()
        cpu_kernels.sgd_round_(got, product, lr, wd, seed, row_offset)
        assert _same_bits(got, want), (rows, cols, lr, wd)
        assert not torch.equal(got.view(torch.uint8), w.view(torch.uint8))


def test_sgd_round_rejects_other_dtypes_and_shapes():
    w = torch.zeros(4, 3, dtype=BF16)
    with pytest.raises(ValueError, match="bf16 or fp32 matrix"):
        cpu_kernels.sgd_round_(w, torch.zeros(4, 3, dtype=torch.float16), 0.1, 0.0, 1, 0)
    with pytest.raises(ValueError, match="bf16 or fp32 matrix"):
        cpu_kernels.sgd_round_(w, torch.zeros(3, 3), 0.1, 0.0, 1, 0)
    with pytest.raises(ValueError, match="e4m3 or bf16"):
        cpu_kernels.sgd_round_(w.float(), torch.zeros(4, 3, dtype=BF16), 0.1, 0.0, 1, 0)


def test_e4m3_conversions_equal_torch_for_every_byte():
    every = torch.arange(256, dtype=torch.uint8).view(E4M3).reshape(16, 16)
    assert torch.equal(
        cpu_kernels.e4m3_to(every, BF16).view(torch.uint16), every.to(BF16).view(torch.uint16)
    )
    assert torch.equal(
        cpu_kernels.e4m3_to(every, torch.float32).view(torch.int32),
        every.to(torch.float32).view(torch.int32),
    )
    with pytest.raises(ValueError, match="bf16 or fp32"):
        cpu_kernels.e4m3_to(every, torch.float16)
    a = torch.zeros(256)
    out32, out16, e4m3 = torch.empty(256), torch.empty(256, dtype=torch.int64), torch.empty(256)
    _map_scalars(a.numpy(), np.float32(1.0), a.numpy(), out32.numpy(), out16.numpy(), e4m3.numpy())
    want = every.reshape(-1).to(torch.float32)
    assert torch.equal(e4m3.view(torch.int32), want.view(torch.int32))  # NaN: 0x7FF00000, signed


def test_bf16_rounding_and_fma_equal_torch():
    gen = torch.Generator().manual_seed(5)
    bits = torch.randint(-(2**31), 2**31, (1 << 16,), generator=gen, dtype=torch.int64)
    bits[:12] = torch.tensor(
        [0x7F7FFFFF, 0x7F7F8000, 0x7F800000, 0x7FC00001, 0x00008000, 0x00018000, 0x0001_7FFF,
         0x3F808000, 0x3F818000, -0x80000000, 0x007FFFFF, -1]
    )  # fmt: skip
    x = bits.to(torch.int32).view(torch.float32)
    c = torch.randn(x.numel(), generator=gen)
    fma, as_bf16, e4m3 = torch.empty_like(x), torch.empty_like(bits), torch.empty_like(x)
    _map_scalars(x.numpy(), np.float32(-0.3), c.numpy(), fma.numpy(), as_bf16.numpy(), e4m3.numpy())
    got = as_bf16.to(torch.int16).view(BF16)
    assert _same_bits(got, x.to(BF16))
    assert _same_bits(fma, c.clone().add_(x, alpha=-0.3))  # torch's vec::fmadd


@pytest.mark.parametrize("shape", [(16, 256), (32, 1024)])
def test_bce_gradient_equals_torch_sigmoid_minus_labels_rounded(shape):
    # sizes whose elements torch's vectorised sigmoid covers entirely (no scalar tail)
    batch, labels = shape
    gen = torch.Generator().manual_seed(labels)
    z = (torch.randn(batch, labels, generator=gen) * 8).to(BF16)
    z.view(-1)[:7] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 90, -90])
    rows = torch.randint(0, batch, (3 * batch,), generator=gen)
    cols = torch.randint(0, labels, (3 * batch,), generator=gen)
    rows[:3], cols[:3] = 0, torch.tensor([0, 1, 2])  # positives at the NaN and the infs
    pos_rows, pos_cols = sorted_positives(rows, cols, batch)
    want = torch.sigmoid(z.to(torch.float32))
    want[pos_rows, pos_cols] -= 1.0
    got = cpu_kernels.bce_gradient_(z.clone(), pos_rows, pos_cols)
    assert got.dtype == BF16
    assert _same_bits(got, want.to(BF16))


@pytest.mark.parametrize("shape", [(16, 256), (37, 1001)])
def test_round_gradient_equals_the_references_rounded_sigmoid_minus_labels(shape):
    # the reference's G for low-precision storage: torch's sigmoid, -1 at the positives, then
    # bf16 and back; the kernel rounds torch's sigmoid, so any shape gives the same bits
    batch, labels = shape
    gen = torch.Generator().manual_seed(labels)
    z = torch.randn(batch, labels, generator=gen) * 8
    z.view(-1)[:7] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 90, -90])
    rows = torch.randint(0, batch, (3 * batch,), generator=gen)
    cols = torch.randint(0, labels, (3 * batch,), generator=gen)
    rows[:3], cols[:3] = 0, torch.tensor([0, 1, 2])  # positives at the NaN and the infs
    pos_rows, pos_cols = sorted_positives(rows, cols, batch)
    want = torch.sigmoid(z)
    want[pos_rows, pos_cols] -= 1.0
    want = want.to(BF16).to(torch.float32)
    got = cpu_kernels.round_gradient_(torch.sigmoid(z), pos_rows, pos_cols)
    assert got.dtype == torch.float32
    assert _same_bits(got, want)
    with pytest.raises(ValueError, match="fp32"):
        cpu_kernels.round_gradient_(z.to(BF16), pos_rows, pos_cols)


def test_kernels_keep_torch_thread_count_and_follow_it():
    # numba's OpenMP layer sets the calling thread's OpenMP thread count (torch's) when it starts
    # its pool: a fresh process, so that the pool starts here
    code = (
        "import torch, numba\n"
        "torch.set_num_threads(1)\n"
        "from elmo_core.head import cpu_kernels\n"
        "w = torch.zeros(64, 8, dtype=torch.float8_e4m3fn)\n"
        "cpu_kernels.e4m3_to(w, torch.bfloat16)\n"
        "print(torch.get_num_threads(), numba.get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


@pytest.mark.parametrize("dtype", [BF16, E4M3])
def test_sgd_round_of_some_rows_equals_the_dense_update_of_those_rows(dtype):
    gen = torch.Generator().manual_seed(8)
    w = _weights(40, 19, dtype, gen)
    product = (torch.randn(40, 19, generator=gen) * 4).to(BF16)
    rows = torch.tensor([0, 5, 6, 39])
    dense = w.clone()
    cpu_kernels.sgd_round_(dense, product, 0.3, 0.01, 21, 1000)
    sparse = w.clone()
    cpu_kernels.sgd_round_(sparse, product[rows].contiguous(), 0.3, 0.01, 21, 1000, rows)
    assert _same_bits(sparse[rows], dense[rows])
    others = torch.ones(40, dtype=torch.bool)
    others[rows] = False
    assert _same_bits(sparse[others], w[others])
    with pytest.raises(ValueError, match="updated rows' shape"):
        cpu_kernels.sgd_round_(sparse, product, 0.3, 0.0, 21, 0, rows)
