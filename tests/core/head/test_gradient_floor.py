"""The head's gradient floor (``XMCHead(gradient_floor=...)``, CPU backends): a step skips the
labels whose ``|G| = |sigmoid(z) - y|`` lies below the floor for every point of the batch.

The batch is built so that no label lies near the floor: half the labels score about -8 for every
point (``|G| < 1e-3``), the rest about 0 (``|G| ~ 0.5``), with the floor at 0.01. Checked against
fp64 (tolerances as in ``test_head_step.py``): skipped rows keep their stored bits; kept rows take
the full step's values (a weight may differ from the floor-free step only where fp32 noise moves
it across a rounding boundary: <= 0.2% of them, one representable step); ``dE`` is the product of
the kept columns alone; Kahan rows are always updated.
"""

from __future__ import annotations

import pytest
import torch
from test_head_step import _rel

from elmo_core.errors import ConfigError
from elmo_core.head import XMCHead, cpu_kernels, rounding
from elmo_core.head.reference import kept_columns

L, D, B, FLOOR = 203, 40, 12, 0.01
BACKENDS = ["reference", "cpu-fused", "cpu-bf16"]


def _setup(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights (fp32), embedding, positive pairs: even labels far below 0 for every point."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(L, D, generator=gen) * 0.05
    w[0::2, 0] = -2.0
    emb = torch.randn(B, D, generator=gen) * 0.5
    emb[:, 0] = 4.0
    rows = torch.arange(B).repeat_interleave(3)
    cols = 2 * torch.randint(0, L // 2, (B * 3,), generator=gen) + 1  # odd labels only
    rows, cols = torch.cat([rows, torch.tensor([0])]), torch.cat([cols, torch.tensor([4])])
    return w, emb, rows, cols  # label 4: far below 0 but a positive: |G| ~ 1, kept


def _skipped() -> torch.Tensor:
    skip = torch.zeros(L, dtype=torch.bool)
    skip[0::2] = True
    skip[4] = False
    return skip


def _head(precision: str, backend: str, floor: float, w: torch.Tensor, **kw) -> XMCHead:
    kw = {"seed": 3, "below_floor_rate": 0.0, **kw}
    head = XMCHead(L, D, precision, chunk_size=64, backend=backend, gradient_floor=floor, **kw)
    head.load_weights(w)
    return head


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp8", "bf16", "fp32"])
def test_floor_skips_exactly_the_labels_below_it(precision, backend):
    w, emb, rows, cols = _setup(1)
    floored = _head(precision, backend, FLOOR, w)
    full = _head(precision, backend, 0.0, w)
    w0 = floored.dequantized().double()
    low = precision != "fp32"
    e = emb.to(torch.bfloat16).double() if low else emb.double()
    y = torch.zeros(B, L, dtype=torch.float64)
    y[rows, cols] = 1.0
    g = torch.sigmoid(e @ w0.T) - y
    skip = _skipped()
    assert bool((g[:, skip].abs() < 1e-3).all()) and bool((g[:, ~skip].abs().amax(0) > 0.1).all())

    before = floored.weight.clone()
    de = floored.step(emb, rows, cols, 0.5)
    de_full = full.step(emb, rows, cols, 0.5)
    got, want = floored.dequantized(), full.dequantized()

    assert torch.equal(floored.weight[skip], before[skip])  # skipped rows: their stored bits
    assert not torch.equal(want[skip], got[skip])  # the full step moves them
    if precision == "fp32":
        torch.testing.assert_close(got[~skip], want[~skip], rtol=1e-5, atol=1e-6)
    else:
        differ = got[~skip] != want[~skip]
        assert float(differ.double().mean()) <= 2e-3
        ulp = 2.0**-3 if precision == "fp8" else 2.0**-7
        gap = (got[~skip] - want[~skip]).abs()[differ]
        assert bool((gap <= ulp * want[~skip].abs()[differ] + floored.scale * 2.0**-9).all())
    de_kept = g[:, ~skip] @ w0[~skip]
    tol = 1e-5 if not low else (2.0**-7 if backend == "cpu-bf16" else 2.0**-8)
    assert _rel(de, de_kept) < tol
    assert _rel(de_full, g @ w0) < tol
    assert _rel(de_full, de_kept) > 1e-3  # what the floor leaves out is visible


@pytest.mark.parametrize("backend", BACKENDS)
def test_kahan_rows_are_updated_below_the_floor(backend):
    w, emb, rows, cols = _setup(2)
    counts = torch.zeros(L)
    counts[_skipped()] = 100.0  # the skipped labels are the frequent ones: the Kahan rows
    head = _head("bf16", backend, FLOOR, w, head_ratio=0.2, label_counts=counts)
    assert head.compensation is not None and head.perm is not None
    kahan_labels = head.perm[: head.compensation.shape[0]]
    assert bool(_skipped()[kahan_labels].all())
    before = head.weight.clone()
    head.step(emb, rows, cols, 0.5)
    assert bool(head.compensation.float().abs().amax(1).gt(0).all())
    # the other skipped labels keep their bits
    others = head.inv_perm[torch.nonzero(_skipped()).squeeze(1)]
    others = others[others >= head.compensation.shape[0]]
    assert torch.equal(head.weight[others], before[others])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_whose_every_gradient_lies_below_the_floor_changes_nothing(backend):
    w, emb, _, _ = _setup(3)
    w[:, 0] = -2.0  # every label far below 0 for every point, and no positives
    head = _head("fp8", backend, FLOOR, w)
    before = head.weight.clone()
    none = torch.empty(0, dtype=torch.int64)
    de = head.step(emb, none, none, 0.5)
    assert torch.equal(head.weight.view(torch.uint8), before.view(torch.uint8))
    assert bool((de == 0).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_columns_from_the_peaks_of_each_column(backend, dtype):
    nan = float("nan")
    g = torch.tensor(
        [[0.001, -0.5, 0.002, 0.02, 0.0], [-0.003, 0.0, 0.009, -0.01, nan], [0.0, 0.0, 0.0, 0.0, 0]]
    ).to(dtype)
    peaks = XMCHead(4, 2, "bf16", backend=backend).backend.column_peaks(g)
    want = torch.tensor([0.003, 0.5, 0.009, 0.02, nan]).to(dtype)
    torch.testing.assert_close(peaks, want, equal_nan=True)
    kept, drawn = kept_columns(peaks, 0.01, 0, rate=0.0, seed=1, row_offset=0)
    assert kept.tolist() == [1, 3, 4] and drawn.tolist() == []  # NaN is kept
    kept, drawn = kept_columns(peaks, 0.01, 1, rate=0.0, seed=1, row_offset=0)
    assert kept.tolist() == [0, 1, 3, 4] and drawn.tolist() == []
    assert kept_columns(peaks, 0.001, 0, rate=0.0, seed=1, row_offset=0) is None
    kept, drawn = kept_columns(peaks, 0.01, 0, rate=1.0, seed=1, row_offset=0)
    assert kept.tolist() == [0, 1, 2, 3, 4] and drawn.tolist() == [0, 2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_column_peaks_kernel_equals_torch_on_a_large_matrix(dtype):
    gen = torch.Generator().manual_seed(6)
    g = (torch.randn(37, 1000, generator=gen) * torch.rand(1000, generator=gen)).to(dtype)
    g[5, 7] = -float("inf")
    assert torch.equal(cpu_kernels.column_peaks(g), g.abs().amax(0))
    with pytest.raises(ValueError, match="bf16 or fp32"):
        cpu_kernels.column_peaks(g.to(torch.float16))


def test_rounding_with_row_ids_draws_the_bits_of_those_rows():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(50, 33, generator=gen)
    full = rounding.stochastic_round_(x.clone(), torch.float8_e4m3fn, 77, row_offset=10)
    ids = torch.tensor([3, 17, 18, 49])
    part = rounding.stochastic_round_(x[ids].clone(), torch.float8_e4m3fn, 77, row_ids=ids + 10)
    assert torch.equal(part, full[ids])


@pytest.mark.parametrize("floor", [-0.1, 0.6, float("nan")])
def test_head_rejects_a_floor_outside_its_range(floor):
    with pytest.raises(ConfigError, match="gradient_floor"):
        XMCHead(10, 4, "fp8", gradient_floor=floor)


@pytest.mark.parametrize("rate", [0.3, 2.0, -0.25, 2.0**-25])
def test_head_rejects_a_below_floor_rate_that_is_not_a_power_of_two(rate):
    with pytest.raises(ConfigError, match="below_floor_rate"):
        XMCHead(10, 4, "fp8", gradient_floor=0.01, below_floor_rate=rate)


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_below_the_floor_are_drawn_at_the_rate_and_scaled_by_its_inverse(backend):
    # fp32 storage (plain SGD, no rounding): a label below the floor either keeps its weights or
    # moves by exactly 4x its full-step update, and about a quarter of them move, so that the
    # expected update is the full step's (unbiased). Binomial: 101 labels x 20 steps, the
    # fraction within 5 standard errors (0.048) of 1/4.
    w, emb, rows, cols = _setup(4)
    skip = _skipped()
    drawn, seen = 0, 0
    for seed in range(20):
        floored = _head("fp32", backend, FLOOR, w, seed=seed, below_floor_rate=0.25)
        full = _head("fp32", backend, 0.0, w, seed=seed)
        w0 = floored.dequantized()
        de = floored.step(emb, rows, cols, 0.5)
        full.step(emb, rows, cols, 0.5)
        moved = (floored.dequantized() - w0)[skip]
        step = (full.dequantized() - w0)[skip]
        hit = moved.abs().amax(1) > 0
        torch.testing.assert_close(moved[hit], 4 * step[hit], rtol=1e-4, atol=1e-7)
        drawn, seen = drawn + int(hit.sum()), seen + int(skip.sum())
        kept = ~skip
        kept[torch.nonzero(skip).squeeze(1)[hit]] = True
        y = torch.zeros(B, L, dtype=torch.float64)
        y[rows, cols] = 1.0
        g = torch.sigmoid(emb.double() @ w0.double().T) - y
        g[:, skip] *= 4.0
        assert _rel(de, g[:, kept] @ w0.double()[kept]) < 1e-5
    assert abs(drawn / seen - 0.25) < 0.048, drawn / seen


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_triton_backend_refuses_a_floor_and_the_reference_on_cuda_applies_it():
    pytest.importorskip("triton")
    with pytest.raises(ConfigError, match="gradient_floor > 0 is a CPU option"):
        XMCHead(L, D, "fp8", device="cuda", gradient_floor=FLOOR)
    w, emb, rows, cols = _setup(5)
    head = XMCHead(
        L,
        D,
        "fp8",
        device="cuda",
        backend="reference",
        gradient_floor=FLOOR,
        below_floor_rate=0.25,
        seed=3,
    )
    head.load_weights(w.cuda())
    before = head.weight.clone()
    head.step(emb.cuda(), rows.cuda(), cols.cuda(), 0.5)
    skip = _skipped().cuda()
    moved = (head.weight != before).any(1)
    assert bool(moved[~skip].all())
    assert 0 < int(moved[skip].sum()) < int(skip.sum())  # some drawn at the rate, not all
