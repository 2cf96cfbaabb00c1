"""Stochastic rounding fp32 -> bf16 / e4m3 and round-to-nearest (elmo_core.head.rounding).

Statistics: each value is rounded ``DRAWS`` times (independent bits: one row per draw). A draw is
``lo + gap * Bernoulli(p)`` with ``p = (x - lo) / gap``, so the mean of ``n`` draws has standard
deviation ``gap * sqrt(p (1 - p) / n)``; we require the mean within 5 of those (plus fp64
summation noise) and the frequency of ``hi`` within 5 standard deviations of ``p``. Fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fp_neighbours import e4m3_grid, neighbours

from elmo_core.head import rounding

DRAWS = 100_000
E4M3, BF16 = torch.float8_e4m3fn, torch.bfloat16


def _draws(values: torch.Tensor, dtype: torch.dtype, seed: int, draws: int = DRAWS):
    x = values.to(torch.float32).expand(draws, -1).contiguous()
    return rounding.stochastic_round(x, dtype, seed).to(torch.float64)


def _check_unbiased(values: torch.Tensor, dtype: torch.dtype, seed: int) -> None:
    out = _draws(values, dtype, seed)
    target = values.to(torch.float32).to(torch.float64)
    lo, hi = neighbours(target, dtype)
    assert bool(((out == lo) | (out == hi)).all()), "a draw left the two neighbours"
    gap = hi - lo
    p = torch.where(gap > 0, (target.clamp(lo, hi) - lo) / gap.clamp_min(1e-300), 0.0)
    sd = torch.sqrt(p * (1 - p) / DRAWS)
    p_up = (out == hi).double().mean(0)
    assert bool(((p_up - p).abs() <= 5 * sd + 1.0 / DRAWS).all()), "P(up) is not the distance"
    err = (out.mean(0) - target.clamp(lo, hi)).abs()
    assert bool((err <= 5 * gap * sd + 1e-12 * target.abs()).all()), "biased mean"


def test_bf16_unbiased_only_neighbours_probability_matches_distance():
    gen = torch.Generator().manual_seed(1)
    vals = torch.cat(
        [
            torch.randn(40, generator=gen) * 3,
            torch.randn(8, generator=gen) * 1e-3,
            torch.randn(8, generator=gen) * 1e-39,  # fp32 subnormals
            torch.tensor([1.0 + 2.0**-9, 255.99, 1.0 - 2.0**-12]),  # carries into the exponent
        ]
    )
    _check_unbiased(torch.cat([vals, -vals]), BF16, seed=11)


def test_e4m3_unbiased_only_neighbours_probability_matches_distance():
    gen = torch.Generator().manual_seed(2)
    vals = torch.cat(
        [
            torch.rand(24, generator=gen) * 400 + 10,
            torch.rand(24, generator=gen) * 0.5,
            torch.rand(16, generator=gen) * 2.0**-6,  # subnormal range
            torch.tensor([15.9, 0.2421875 + 1e-3, 440.0, 2.0**-10, 3 * 2.0**-11, 2.0**-6 - 1e-4]),
        ]
    )
    _check_unbiased(torch.cat([vals, -vals]), E4M3, seed=12)


def test_exactly_representable_values_stay_exact():
    grid = e4m3_grid()
    out = _draws(grid, E4M3, seed=3, draws=500)
    assert torch.equal(out, grid.expand(500, -1))
    gen = torch.Generator().manual_seed(4)
    bf = torch.randn(256, generator=gen).to(BF16).to(torch.float64)
    assert torch.equal(_draws(bf, BF16, seed=5, draws=500), bf.expand(500, -1))


def test_e4m3_corner_cases():
    x = torch.tensor(
        [float("nan"), 500.0, -1e9, float("inf"), float("-inf"), -0.0, 0.0, 448.0, -416.0,
         2.0**-9, 1e-30, -1e-30]
    )  # fmt: skip
    out = _draws(x, E4M3, seed=9, draws=2000)
    assert bool(out[:, 0].isnan().all())
    assert bool((out[:, 1] == 448).all()) and bool((out[:, 2] == -448).all())
    assert bool((out[:, 3] == 448).all()) and bool((out[:, 4] == -448).all())
    assert bool((out[:, 5] == 0).all()) and bool(torch.signbit(out[:, 5]).all())
    assert bool((out[:, 6] == 0).all()) and not bool(torch.signbit(out[:, 6]).any())
    assert bool((out[:, 7] == 448).all()) and bool((out[:, 8] == -416).all())
    assert bool((out[:, 9] == 2.0**-9).all())
    # far below half the smallest subnormal: P(up) = 5e-28, below the 2^-25 resolution of u
    assert bool((out[:, 10] == 0).all()) and bool(torch.signbit(out[:, 11]).all())


def test_e4m3_carry_into_the_exponent_and_saturation_edge():
    out = _draws(torch.tensor([15.75, 440.0, 2.0**-6 - 2.0**-10]), E4M3, seed=6, draws=20000)
    assert set(out[:, 0].unique().tolist()) == {15.0, 16.0}  # 16 = 1.0 x 2^4: a new exponent
    assert set(out[:, 1].unique().tolist()) == {416.0, 448.0}
    assert set(out[:, 2].unique().tolist()) == {2.0**-6 - 2.0**-9, 2.0**-6}  # subnormal -> normal
    assert abs(float((out[:, 0] == 16).double().mean()) - 0.75) < 5 * math.sqrt(0.1875 / 20000)


def test_bf16_corner_cases():
    x = torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 448.0])
    out = _draws(x, BF16, seed=7, draws=2000)
    assert bool(out[:, 0].isnan().all())
    assert bool((out[:, 1] == math.inf).all()) and bool((out[:, 2] == -math.inf).all())
    assert bool(torch.signbit(out[:, 3]).all()) and bool((out[:, 3] == 0).all())
    assert not bool(torch.signbit(out[:, 4]).any()) and bool((out[:, 5] == 448).all())


def test_seeds_reproduce_and_differ():
    x = torch.rand(64, 33) * 3
    a = rounding.stochastic_round(x, E4M3, seed=5).view(torch.uint8)
    b = rounding.stochastic_round(x, E4M3, seed=5).view(torch.uint8)
    c = rounding.stochastic_round(x, E4M3, seed=6).view(torch.uint8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the bits of an element depend on its (row, col), not on the slice it is rounded in
    tail = rounding.stochastic_round(x[40:], E4M3, seed=5, row_offset=40).view(torch.uint8)
    assert torch.equal(tail, a[40:])


def _fmix32_int(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _numpy_fmix32(x: np.ndarray) -> np.ndarray:
    m = np.uint64(0xFFFFFFFF)
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x85EBCA6B)) & m
    x = x ^ (x >> np.uint64(13))
    x = (x * np.uint64(0xC2B2AE35)) & m
    return x ^ (x >> np.uint64(16))


def _numpy_bits(rows: np.ndarray, cols: np.ndarray, seed: int) -> np.ndarray:
    m = np.uint64(0xFFFFFFFF)
    r, c = rows.astype(np.uint64)[:, None], cols.astype(np.uint64)[None, :]
    x = _numpy_fmix32((r * np.uint64(0x9E3779B1) + np.uint64(seed)) & m)
    return _numpy_fmix32(x ^ ((c * np.uint64(0x85EBCA77)) & m))


def test_random_bits_match_the_documented_hash():
    rows = [0, 1, 7, 123_456_789, 2**32 - 1, 8_599_999]
    cols = [0, 1, 767, 65_535]
    seed = rounding.step_seed(42, 3)
    got = rounding.random_bits(torch.tensor(rows)[:, None], torch.tensor(cols)[None, :], seed)
    for i, r in enumerate(rows):
        x = _fmix32_int((r * 0x9E3779B1 + seed) & 0xFFFFFFFF)
        for j, c in enumerate(cols):
            assert int(got[i, j]) == _fmix32_int(x ^ ((c * 0x85EBCA77) & 0xFFFFFFFF))
    # a large sample against numpy's uint64 arithmetic (wrap-around well defined there)
    gen = torch.Generator().manual_seed(13)
    r64 = torch.cat([torch.randint(0, 2**32, (4000,), generator=gen), torch.tensor([2**32 - 1])])
    c64 = torch.randint(0, 2**20, (64,), generator=gen)
    got = rounding.random_bits(r64[:, None], c64[None, :], seed).numpy().astype(np.uint64)
    assert np.array_equal(got, _numpy_bits(r64.numpy(), c64.numpy(), seed))
    bits = rounding.random_bits(torch.arange(512)[:, None], torch.arange(512)[None, :], seed)
    # 2^18 draws of each bit: its frequency of ones is 0.5 within 5 sd
    freq = torch.stack([(bits >> b) & 1 for b in range(32)]).double().mean(dim=(1, 2))
    assert bool(((freq - 0.5).abs() < 5 * 0.5 / 512).all())


@pytest.mark.parametrize("dtype", [E4M3, torch.float8_e5m2, BF16])
def test_round_nearest_saturates_and_rounds_to_nearest(dtype):
    big = torch.finfo(dtype).max
    x = torch.tensor([1e30, -1e30, float("nan"), 1.0 + 2.0**-12, -0.0])
    out = rounding.round_nearest(x, dtype).to(torch.float64)
    if dtype == BF16:
        assert abs(float(out[0]) / 1e30 - 1) < 2.0**-8 and float(out[1]) == -float(out[0])
    else:
        assert out[0] == big and out[1] == -big
    assert bool(out[2].isnan()) and out[3] == 1.0 and bool(torch.signbit(out[4]))


def test_stochastic_round_rejects_other_dtypes():
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        rounding.stochastic_round(torch.ones(3), torch.float16, seed=0)


def _numpy_stochastic_round(x: np.ndarray, dtype: torch.dtype, r: np.ndarray) -> np.ndarray:
    """The module docstring's rounding, written out in numpy: uint64 bit patterns, fp32 values."""
    f32, u64 = np.float32, np.uint64
    bits = x.view(np.uint32).astype(u64)
    if dtype == BF16:
        out = ((bits + (r & u64(0xFFFF))) & u64(0xFFFF0000)).astype(np.uint32).view(f32)
    else:
        with np.errstate(invalid="ignore"):
            mag = np.minimum(np.abs(x), f32(448.0))
            normal = (mag.view(np.uint32).astype(u64) + (r & u64(0xFFFFF))) & u64(0xFFF00000)
            q = mag * f32(512.0)
            low = np.floor(q)
            u = ((r >> u64(8)).astype(f32) + f32(0.5)) * f32(2.0**-24)
            sub = (low + (u < q - low).astype(f32)) * f32(1.0 / 512.0)
            res = np.where(mag < f32(2.0**-6), sub, normal.astype(np.uint32).view(f32))
        out = (res.view(np.uint32) | (bits & u64(0x80000000)).astype(np.uint32)).view(f32)
    return np.where(np.isnan(x), x, out)


def _edge_case_matrix(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Random fp32 over 2^-30 .. 2^12 with edge cases sprinkled in: fp32 subnormals, +-0, NaNs
    (payloads and signs), +-inf, the e4m3 saturation, both grids' values, the 2^-6 boundary."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=gen) * torch.exp2(
        torch.randint(-30, 12, (rows, cols), generator=gen).float()
    )
    nans = torch.tensor([0x7FC00000, 0x7F800001, 0x7FFFFFFF, -1, -0x400000], dtype=torch.int32)
    edges = [float("inf"), float("-inf"), 0.0, -0.0, 448.0, -448.0, 449.0, 464.0, 1e9, 3.4e38,
             -3.4e38, 1e-45, -1e-45, 1e-39, 2.0**-6, -(2.0**-6), 2.0**-6 - 2.0**-30, 2.0**-9,
             2.0**-10, 15.75, 255.99]  # fmt: skip
    special = torch.cat(
        [
            nans.view(torch.float32),
            torch.tensor(edges),
            e4m3_grid().to(torch.float32),
            torch.randn(64, generator=gen).to(BF16).to(torch.float32),
        ]
    )
    flat = x.view(-1)
    where = torch.randperm(flat.numel(), generator=gen)[: 4 * special.numel()]
    flat[where] = special.repeat(4)[: where.numel()]
    return x


@pytest.mark.parametrize("dtype", [BF16, E4M3])
def test_blockwise_rounding_is_bit_identical_to_the_spec(dtype):
    # several blocks, a partial last block, rows wrapping past 2^32, seeds up to 2^32 - 1
    for rows, cols, row_offset, seed in [
        (700, 97, 2**32 - 300, 2**32 - 1),
        (3 * rounding.BLOCK // 256 + 5, 256, 1234, rounding.step_seed(7, 2)),
        (9, 1, 0, 0),
    ]:
        x = _edge_case_matrix(rows, cols, seed=rows)
        r = _numpy_bits(np.arange(row_offset, row_offset + rows) % 2**32, np.arange(cols), seed)
        want = _numpy_stochastic_round(x.numpy(), dtype, r)
        stored = torch.empty(rows, cols, dtype=dtype)
        got = rounding.stochastic_round_(x.clone(), dtype, seed, row_offset, out=stored)
        assert np.array_equal(got.view(torch.int32).numpy(), want.view(np.int32))
        want_stored = torch.from_numpy(want).to(dtype)
        assert torch.equal(stored.view(torch.uint8), want_stored.view(torch.uint8))


@pytest.mark.parametrize("dtype", [BF16, E4M3])
def test_threaded_rounding_equals_single_thread(dtype):
    # many blocks (a partial last one), NaNs, subnormals: 1 worker against 2, 3 and the default;
    # one block of BLOCK elements holds a single signalling NaN, whose bits are kept
    rows, cols, row_offset, seed = 9 * rounding.BLOCK // 200 + 7, 200, 2**32 - 100, 12345
    x = _edge_case_matrix(rows, cols, seed=5)
    r = _numpy_bits(np.arange(row_offset, row_offset + rows) % 2**32, np.arange(cols), seed)
    want = _numpy_stochastic_round(x.numpy(), dtype, r)
    one_out = torch.empty(rows, cols, dtype=dtype)
    one = rounding.stochastic_round_(x.clone(), dtype, seed, row_offset, out=one_out, workers=1)
    assert np.array_equal(one.view(torch.int32).numpy(), want.view(np.int32))
    for workers in (2, 3, None):
        out = torch.empty(rows, cols, dtype=dtype)
        got = rounding.stochastic_round_(
            x.clone(), dtype, seed, row_offset, out=out, workers=workers
        )
        assert torch.equal(got.view(torch.int32), one.view(torch.int32))
        assert torch.equal(out.view(torch.uint8), one_out.view(torch.uint8))


def test_threaded_rounding_single_block_and_more_workers_than_blocks():
    x = _edge_case_matrix(3, 50, seed=3)
    for dtype in (BF16, E4M3):
        one = rounding.stochastic_round_(x.clone(), dtype, 9, workers=1)
        many = rounding.stochastic_round_(x.clone(), dtype, 9, workers=8)
        assert torch.equal(many.view(torch.int32), one.view(torch.int32))
