"""Triton head kernels on CUDA against an fp64 computation of the same maths (DESIGN.md section 1).

Skipped without CUDA; run on the H200 with ``python3 -m pytest tests/core/head -m gpu``.
Tolerances: logits and input gradient within bf16 operand error (relative norm <= 1e-2; the native
fp8 forward, e4m3 embedding, <= 6e-2); updated weights element by element on one of the two
representable neighbours of the fp64 update (stochastic rounding), and unbiased over all elements.
"""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

DTYPES = {"fp8": torch.float8_e4m3fn, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def tk():
    pytest.importorskip("triton")
    from elmo_core.head import triton_kernels

    return triton_kernels


def _e4m3_grid() -> torch.Tensor:
    vals = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float64)
    return torch.unique(vals[torch.isfinite(vals)])


def neighbours(x: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The representable values just below and just above each ``x`` (equal if exact)."""
    x = x.to(torch.float64)
    if precision == "fp8":
        grid = _e4m3_grid().to(x.device)
        xc = x.clamp(-448.0, 448.0)
        hi_i = torch.searchsorted(grid, xc).clamp(max=grid.numel() - 1)
        lo_i = torch.searchsorted(grid, xc, right=True).sub(1).clamp(min=0)
        return grid[lo_i], grid[hi_i]
    x32 = x.to(torch.float32)
    bits = x32.view(torch.int32)
    toward_zero = (bits & -65536).view(torch.float32)  # clear the low 16 bits: |.| rounded down
    away = (bits.bitwise_and(-65536) + 65536).view(torch.float32)
    away = torch.where(toward_zero == x32, toward_zero, away).to(torch.float64)
    toward_zero = toward_zero.to(torch.float64)
    return torch.minimum(toward_zero, away), torch.maximum(toward_zero, away)


def make_problem(num_labels, dim, batch, precision, *, positives=5, seed=0, std=0.05):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    w32 = torch.randn(num_labels, dim, device="cuda", generator=gen) * std
    weight = w32.to(DTYPES[precision]).contiguous()
    emb = torch.randn(batch, dim, device="cuda", generator=gen)
    rows = torch.arange(batch, device="cuda").repeat_interleave(positives)
    cols = torch.randint(0, num_labels, (batch * positives,), device="cuda", generator=gen)
    return weight, emb, rows, cols


def flip_slack(g, e, w, lr: float) -> torch.Tensor:
    """Per weight element, how far the kernel's update may sit from the oracle's: a ``G`` (B x n,
    fp64) value near a bf16 rounding threshold can round the other way in the kernel (fp32
    tensor-core logits and a fast sigmoid against fp64; the logit error is bounded by 2^-18 of
    ``|e| |w|``), moving the update by that bf16 step times ``lr |e|``; plus fp32 rounding of the
    update itself (2^-21 of ``|w| + lr |G| |e|``)."""
    g16 = g.to(torch.bfloat16).to(torch.float64)
    wiggle = 1e-5 * g.abs() + 0.25 * 2.0**-18 * (e.abs() @ w.abs().T) + 1e-6
    up = (g + wiggle).to(torch.bfloat16).to(torch.float64)
    down = (g - wiggle).to(torch.bfloat16).to(torch.float64)
    amb = torch.maximum((up - g16).abs(), (down - g16).abs())
    fp32 = 2.0**-21 * (w.abs() + lr * (g16.abs().T @ e.abs()))
    return lr * (amb.T @ e.abs()) + fp32


def oracle_step(weight, emb, rows, cols, lr, wd=0.0):
    """fp64 logits, input gradient and updated weights (before rounding), plus the per-element
    slack of the update: the kernels round G to bf16 for the update's tensor-core product, as the
    oracle does here, so only G values at a bf16 rounding threshold may differ (``flip_slack``)."""
    w = weight.to(torch.float64)
    e = emb.to(torch.bfloat16).to(torch.float64)
    z = e @ w.T
    y = torch.zeros_like(z)
    y[rows, cols] = 1.0
    g = torch.sigmoid(z) - y
    g16 = g.to(torch.bfloat16).to(torch.float64)
    return z, g @ w, w - lr * (g16.T @ e + wd * w), flip_slack(g, e, w, lr)


def rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def assert_on_neighbours(new, target, precision: str, slack=0.0):
    """Every element is a neighbour of a value within ``slack`` plus 1% of a spacing of
    ``target`` (fp32 against fp64 arithmetic), and the rounding is unbiased over all elements."""
    lo, hi = neighbours(target, precision)
    gap = (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    got = new.to(torch.float64)
    tol = 0.01 * gap + slack
    # the kernel rounds its own target, within ``tol`` of ours: a neighbour of any value there
    lo = neighbours(target - tol, precision)[0]
    hi = neighbours(target + tol, precision)[1]
    ok = (got >= lo) & (got <= hi)
    if not bool(ok.all()):
        bad = (~ok).nonzero()[:5]
        detail = [
            (
                tuple(i.tolist()),
                float(got[tuple(i)]),
                float(lo[tuple(i)]),
                float(hi[tuple(i)]),
                float(target[tuple(i)]),
                float(tol.expand_as(got)[tuple(i)]),
            )
            for i in bad
        ]
        raise AssertionError(
            f"{int((~ok).sum())} of {ok.numel()} elements off their neighbours "
            f"(index, got, lo, hi, target, tol): {detail}"
        )
    frac = ((got - target) / gap)[gap > torch.finfo(torch.float32).tiny]
    bound = 5.0 * 0.5 / math.sqrt(frac.numel()) + 0.01
    assert abs(float(frac.mean())) < bound, f"rounding bias {float(frac.mean()):.4f} > {bound:.4f}"


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
@pytest.mark.parametrize("native", [False, True])
def test_logits_match_fp64_and_fill_every_tile(tk, precision, native):
    if native and precision == "bf16":
        pytest.skip("native fp8 operands apply to fp8 weights only")
    weight, emb, _, _ = make_problem(1000, 200, 37, precision, seed=1)
    out = torch.full((37, 1000), float("nan"), device="cuda")
    cfg = tk.KernelConfig(native_fp8=native)
    tk.logits(weight, emb, out=out, config=cfg)
    assert not bool(out.isnan().any()), "some logits were never written"
    z = emb.to(torch.float64) @ weight.to(torch.float64).T
    assert rel(out, z) < (6e-2 if native else 1e-2)


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_step_matches_fp64(tk, precision):
    # sizes that are no multiples of the tiles (128 labels, 64 columns), several chunks
    weight, emb, rows, cols = make_problem(1000, 200, 37, precision, seed=2)
    cols[:4] = torch.tensor([0, 127, 128, 999], device="cuda")
    rows = torch.cat([rows, rows[:3]])  # duplicated pairs count once
    cols = torch.cat([cols, cols[:3]])
    lr, wd = 0.05, 0.01
    _, de_ref, w_ref, slack = oracle_step(weight, emb, rows, cols, lr, wd)
    w = weight.clone()
    cfg = tk.KernelConfig(chunk=384)
    de = tk.head_step(w, emb, rows, cols, lr, seed=11, weight_decay=wd, config=cfg)
    assert de.dtype == torch.float32 and de.shape == emb.shape
    assert rel(de, de_ref) < 1e-2
    assert_on_neighbours(w, w_ref, precision, slack)
    moved = (w.double() != weight.double()).double().mean()
    assert float(moved) > 0.5, "most weights should move under this update"


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_step_is_reproducible_and_seed_dependent(tk, precision):
    weight, emb, rows, cols = make_problem(300, 64, 16, precision, seed=3)
    outs = []
    for seed in (5, 5, 6):
        w = weight.clone()
        tk.head_step(w, emb, rows, cols, 0.3, seed=seed)
        outs.append(w.view(torch.uint8) if precision == "fp8" else w.view(torch.int16))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_native_fp8_step_gradient(tk):
    weight, emb, rows, cols = make_problem(700, 128, 64, "fp8", seed=4)
    _, de_ref, w_ref, _ = oracle_step(weight, emb, rows, cols, 0.05)
    w = weight.clone()
    de = tk.head_step(w, emb, rows, cols, 0.05, seed=1, config=tk.KernelConfig(native_fp8=True))
    assert rel(de, de_ref) < 3e-2
    assert rel(w.double() - weight.double(), w_ref - weight.double()) < 0.3


def _sr_draws(tk, values: torch.Tensor, dtype, draws: int, seed: int) -> torch.Tensor:
    x = values.to(torch.float32).expand(draws, -1).contiguous()
    return tk.stochastic_round(x, dtype, seed).to(torch.float64)


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_sr_unbiased_on_gpu(tk, precision):
    gen = torch.Generator(device="cuda").manual_seed(7)
    if precision == "fp8":
        vals = torch.cat(
            [
                torch.rand(24, device="cuda", generator=gen) * 400 + 10,
                torch.rand(24, device="cuda", generator=gen) * 0.5,
                torch.rand(16, device="cuda", generator=gen) * 2.0**-6,  # subnormal range
                torch.tensor(
                    [15.9, 0.2421875 + 0.001, 440.0, 2.0**-10, 3 * 2.0**-11], device="cuda"
                ),
            ]
        )
    else:
        vals = torch.cat(
            [
                torch.randn(48, device="cuda", generator=gen) * 3,
                torch.randn(16, device="cuda", generator=gen) * 1e-30,
                torch.tensor([1.0 + 2.0**-9, 255.99], device="cuda"),
            ]
        )
    vals = torch.cat([vals, -vals])
    draws = 100_000
    out = _sr_draws(tk, vals, DTYPES[precision], draws, seed=123)
    target = vals.to(torch.float32).to(torch.float64)
    lo, hi = neighbours(target, precision)
    assert bool(((out == lo) | (out == hi)).all()), "a draw left the two neighbours"
    gap = hi - lo
    p_up = (out == hi).double().mean(0)
    expected = torch.where(gap > 0, (target - lo) / gap.clamp_min(1e-300), 1.0)
    sigma = torch.sqrt(expected * (1 - expected) / draws).clamp_min(1.0 / draws)
    assert bool(((p_up - expected).abs() <= 5 * sigma + 1e-6).all())
    mean_err = (out.mean(0) - target).abs()
    assert bool((mean_err <= 5 * gap * 0.5 / math.sqrt(draws) + 1e-12).all())


def test_sr_corner_cases_on_gpu(tk):
    e4 = torch.float8_e4m3fn
    x = torch.tensor(
        [float("nan"), 500.0, -1e9, float("inf"), -0.0, 0.0, 448.0, -416.0, 2.0**-9, 1e-30],
        device="cuda",
    )
    out = _sr_draws(tk, x, e4, 2000, seed=9)
    assert bool(out[:, 0].isnan().all())
    assert bool((out[:, 1] == 448).all()) and bool((out[:, 2] == -448).all())
    assert bool((out[:, 3] == 448).all())
    assert bool((out[:, 4] == 0).all()) and bool(torch.signbit(out[:, 4]).all())
    assert bool((out[:, 5] == 0).all()) and not bool(torch.signbit(out[:, 5]).any())
    assert bool((out[:, 6] == 448).all()) and bool((out[:, 7] == -416).all())
    assert bool((out[:, 8] == 2.0**-9).all())
    assert bool((out[:, 9] == 0).all())
    bf = _sr_draws(tk, x, torch.bfloat16, 2000, seed=9)
    assert bool(bf[:, 0].isnan().all()) and bool((bf[:, 3] == float("inf")).all())
    assert bool(torch.signbit(bf[:, 4]).all()) and bool((bf[:, 6] == 448).all())


@pytest.mark.parametrize("comp_dtype", [torch.bfloat16, torch.float8_e5m2])
def test_kahan_rows_track_what_rounding_lost(tk, comp_dtype):
    weight, emb, rows, cols = make_problem(500, 96, 32, "bf16", seed=5, std=1.0)
    n_kahan = 200  # crosses a tile boundary
    comp = (torch.randn(n_kahan, 96, device="cuda") * 1e-3).to(comp_dtype)
    comp_before = comp.to(torch.float64)
    lr = 1e-3
    _, _, w_ref, slack = oracle_step(weight, emb, rows, cols, lr)
    w = weight.clone()
    tk.head_step(w, emb, rows, cols, lr, seed=2, compensation=comp)
    y = (w_ref - weight.double())[:n_kahan] - comp_before
    # compensated rows: rounded around w + (u - c); the buffer keeps (new - w) - y
    assert_on_neighbours(w[:n_kahan], weight[:n_kahan].double() + y, "bf16", slack[:n_kahan])
    expect_c = (w[:n_kahan].double() - weight[:n_kahan].double()) - y
    # rounding to nearest: half a spacing, relative (e5m2 subnormals: 2^-17 absolute)
    tol, atol = (0.13, 1e-5) if comp_dtype == torch.float8_e5m2 else (0.01, 1e-6)
    err = (comp.double() - expect_c).abs()
    assert bool((err <= tol * expect_c.abs() + slack[:n_kahan] + atol).all())
    assert_on_neighbours(w[n_kahan:], w_ref[n_kahan:], "bf16", slack[n_kahan:])


def test_kahan_keeps_the_exact_running_sum(tk):
    # bf16 weights near 1.0 (spacing 2^-8..2^-7), updates ~1e-4 per step: after many steps the
    # Kahan invariant w - c == 1 + sum of updates holds per element, while plain stochastic
    # rounding has drifted by a random walk of about a spacing
    dim, batch, steps, n = 64, 16, 100, 256
    emb = torch.full((batch, dim), 0.01, device="cuda")
    rows = torch.empty(0, dtype=torch.int64, device="cuda")
    cols = torch.empty(0, dtype=torch.int64, device="cuda")
    comp = torch.zeros(n, dim, device="cuda", dtype=torch.bfloat16)
    w_k = torch.ones(n, dim, device="cuda", dtype=torch.bfloat16)
    w_p = w_k.clone()
    exact_k = torch.ones(n, dim, device="cuda", dtype=torch.float64)
    exact_p = exact_k.clone()
    for s in range(steps):
        _, _, nxt, _ = oracle_step(w_k, emb, rows, cols, 1e-3)
        exact_k += nxt - w_k.double()
        _, _, nxt, _ = oracle_step(w_p, emb, rows, cols, 1e-3)
        exact_p += nxt - w_p.double()
        tk.head_step(w_k, emb, rows, cols, 1e-3, seed=s, compensation=comp)
        tk.head_step(w_p, emb, rows, cols, 1e-3, seed=s)
    kahan_err = (w_k.double() - comp.double() - exact_k).abs().max()
    plain_err = (w_p.double() - exact_p).pow(2).mean().sqrt()
    assert float(kahan_err) < 2e-4
    assert float(plain_err) > 1e-3


def test_topk_matches_full_sort(tk):
    weight, emb, _, _ = make_problem(5000, 96, 20, "fp8", seed=6)
    z = emb.to(torch.bfloat16).double() @ weight.double().T
    exact = tk.KernelConfig(topk_native_fp8=False)
    scores, ids = tk.topk(weight, emb, 10, max_scores_bytes=20 * 4 * 700, config=exact)
    assert ids.shape == (20, 10) and ids.dtype == torch.int64
    ref_scores, _ = torch.topk(z, 10, dim=1)
    assert torch.allclose(scores.double(), ref_scores, rtol=1e-3, atol=1e-3)
    assert torch.allclose(torch.gather(z, 1, ids), scores.double(), rtol=1e-3, atol=1e-3)
    native = tk.KernelConfig(topk_native_fp8=True)  # e4m3 scan, exact rescoring
    nat_s, nat_i = tk.topk(weight, emb, 10, max_scores_bytes=20 * 4 * 700, config=native)
    assert torch.allclose(nat_s.double(), ref_scores, rtol=1e-3, atol=1e-3)  # rescored exactly
    assert float((nat_i == ids).double().mean()) > 0.95
    one_s, one_i = tk.topk(weight, emb[:1], 10, config=exact)
    assert torch.allclose(one_s.double(), ref_scores[:1], rtol=1e-3, atol=1e-3)
    assert torch.equal(one_i, ids[:1])


def test_large_label_count_smoke(tk):
    # 8.6M x 768 e4m3 (6.6e9 elements: 64-bit offsets); a sample of rows checked element-wise,
    # the input gradient against an fp32 chunked computation over all labels
    num_labels, dim, batch, lr = 8_600_000, 768, 128, 0.05
    block = 1 << 20
    weight = torch.empty(num_labels, dim, device="cuda", dtype=torch.float8_e4m3fn)
    gen = torch.Generator(device="cuda").manual_seed(8)
    for r0 in range(0, num_labels, block):
        r1 = min(num_labels, r0 + block)
        part = torch.randn(r1 - r0, dim, device="cuda", generator=gen) * 0.05
        weight[r0:r1] = part.to(torch.float8_e4m3fn)
    emb = torch.randn(batch, dim, device="cuda", generator=gen)
    rows = torch.arange(batch, device="cuda").repeat_interleave(5)
    cols = torch.randint(0, num_labels, (batch * 5,), device="cuda", generator=gen)
    cols[-1] = num_labels - 1
    sample = torch.cat(
        [
            torch.randint(0, num_labels, (2048,), device="cuda", generator=gen),
            cols[:64],
            torch.arange(num_labels - 300, num_labels, device="cuda"),
        ]
    ).unique()
    w_old = weight.view(torch.uint8)[sample].view(torch.float8_e4m3fn).to(torch.float64)
    e16 = emb.to(torch.bfloat16)
    e = e16.to(torch.float64)
    y_s = torch.zeros(batch, sample.numel(), device="cuda", dtype=torch.float64)
    hit = (cols[:, None] == sample[None, :]).nonzero()
    y_s[rows[hit[:, 0]], hit[:, 1]] = 1.0
    g_s = torch.sigmoid(e @ w_old.T) - y_s
    w_ref = w_old - lr * g_s.to(torch.bfloat16).to(torch.float64).T @ e
    slack = flip_slack(g_s, e, w_old, lr)
    de_ref = torch.zeros(batch, dim, device="cuda", dtype=torch.float64)
    for r0 in range(0, num_labels, block):
        wc = weight[r0 : r0 + block].to(torch.float32)
        gc = torch.sigmoid(e16.float() @ wc.T)
        inside = (cols >= r0) & (cols < r0 + wc.shape[0])
        r, c = rows[inside], cols[inside] - r0
        gc.index_put_((r, c), gc[r, c] - 1.0)
        de_ref += (gc @ wc).double()
    de = tk.head_step(weight, emb, rows, cols, lr, seed=3)
    assert rel(de, de_ref) < 1e-2
    new = weight.view(torch.uint8)[sample].view(torch.float8_e4m3fn)
    assert_on_neighbours(new, w_ref, "fp8", slack)


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_sr_bits_identical_to_rounding_py(tk, precision):
    from elmo_core.head import rounding

    gen = torch.Generator(device="cuda").manual_seed(10)
    x = torch.randn(300, 77, device="cuda", generator=gen) * torch.logspace(
        -4, 2, 77, device="cuda"
    )
    x[0, :4] = torch.tensor([float("nan"), -0.0, 1e3, 2.0**-12], device="cuda")
    dtype = DTYPES[precision]
    exact = tk.KernelConfig(reference_bits=True)
    got = tk.stochastic_round(x, dtype, seed=12345, config=exact)
    want = rounding.stochastic_round(x, dtype, 12345)
    as_int = torch.uint8 if precision == "fp8" else torch.int16
    assert torch.equal(got.view(as_int), want.view(as_int))
    fast = tk.stochastic_round(x, dtype, 12345)
    lo, hi = neighbours(x.double(), precision)
    f = fast.double()
    assert bool(((f == lo) | (f == hi) | (f.isnan() & x.isnan())).all())
