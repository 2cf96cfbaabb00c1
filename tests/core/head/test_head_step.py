"""One head step against an fp64 computation of DESIGN.md section 1, per precision; fp32 against
autograd + SGD; Kahan compensation; chunking does not change the result.

Tolerances: fp32 head vs autograd 1e-5 (fp32 sums in another order). Low precision: the input
gradient is ``G W`` with ``G`` rounded to bf16 (relative error <= 2^-9 per element, so the norm is
within 2^-8 of fp64); each updated weight must be one of the two representable neighbours of the
fp64 update (in storage units) up to a slack of ``lr * 2^-8 * max|e|`` (a ``G`` near a bf16
rounding boundary may round the other way in fp32 than in fp64) plus 1e-6 relative, and the
rounding must be unbiased over all elements (mean of (got - target) / spacing within 5 standard
errors of 0).

The fused CPU backend (``cpu-fused``) has the reference's products and so its tolerances. The CPU
backend with bf16 GEMMs (``cpu-bf16``) rounds each product's result to bf16, so its input
gradient gets 2^-7 (a chunk's contribution rounded once more) and each weight's slack grows by
2^-8 of its fp64 update (``G^T E`` rounded to bf16); the rest holds as for the reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from fp_neighbours import neighbours

from elmo_core.head import XMCHead

L, D, B = 301, 48, 16


def _batch(seed: int, num_labels: int = L, batch: int = B, dim: int = D):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(batch, dim, generator=gen)
    rows = torch.arange(batch).repeat_interleave(5)
    cols = torch.randint(0, num_labels, (batch * 5,), generator=gen)
    return emb, rows, cols


def _fp64_step(w, emb, rows, cols, lr, wd, low: bool):
    """(dE from fp64 G, the fp64 updated weights with G rounded as the low-precision rule says)."""
    e = emb.to(torch.bfloat16).double() if low else emb.double()
    w = w.double()
    y = torch.zeros(e.shape[0], w.shape[0], dtype=torch.float64)
    y[rows, cols] = 1.0
    g = torch.sigmoid(e @ w.T) - y
    g_upd = g.to(torch.bfloat16).double() if low else g
    return g @ w, w - lr * (g_upd.T @ e + wd * w)


def _rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


BACKENDS = ["reference", "cpu-fused", "cpu-bf16"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_low_precision_step_matches_fp64(precision, backend):
    head = XMCHead(
        L, D, precision, chunk_size=128, weight_decay=0.01, init_std=0.05, seed=1, backend=backend
    )
    dtype = head.dtype
    emb, rows, cols = _batch(2)
    rows, cols = torch.cat([rows, rows[:3]]), torch.cat([cols, cols[:3]])  # duplicates count once
    w0 = head.dequantized()
    lr, s = 0.5, head.scale
    de_ref, w_ref = _fp64_step(w0, emb, rows, cols, lr, 0.01, low=True)
    de = head.step(emb, rows, cols, lr)
    assert de.dtype == torch.float32 and de.shape == (B, D)
    assert _rel(de, de_ref) < (2.0**-7 if backend == "cpu-bf16" else 2.0**-8)
    target = w_ref / s  # storage units
    got = head.dequantized().double() / s
    slack = lr * 2.0**-8 * emb.to(torch.bfloat16).double().abs().max() / s + 1e-6 * target.abs()
    if backend == "cpu-bf16":
        slack = slack + 2.0**-8 * (w_ref - w0.double()).abs() / s
    lo, _ = neighbours(target - slack, dtype)
    _, hi = neighbours(target + slack, dtype)
    assert bool(((got >= lo) & (got <= hi)).all()), "a weight is off its two neighbours"
    lo, hi = neighbours(target, dtype)
    frac = ((got - target) / (hi - lo))[hi > lo]
    if backend != "cpu-bf16":
        assert abs(float(frac.mean())) < 5 * 0.5 / math.sqrt(frac.numel())
    else:
        # G^T E rounded to bf16 errs alike along a column (here G is about 0.5 at every negative):
        # the mean error is bounded by 2^-8 of the mean update, plus the rounding's noise.
        update = float((w_ref - w0.double()).abs().mean() / s)
        noise = float((hi - lo).mean()) * 0.5 / math.sqrt(frac.numel())
        assert abs(float((got - target).mean())) < 2.0**-8 * update + 5 * noise
    assert float((got != w0.double() / s).double().mean()) > 0.5, "the step should move weights"


def test_fp32_head_equals_autograd_bce_and_sgd():
    lr, wd = 0.1, 0.01
    head = XMCHead(L, D, "fp32", chunk_size=100, weight_decay=wd, seed=3)
    param = torch.nn.Parameter(head.dequantized().clone())
    opt = torch.optim.SGD([param], lr=lr, weight_decay=wd)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    for step in range(4):
        emb, rows, cols = _batch(10 + step)
        e = emb.clone().requires_grad_(True)
        y = torch.zeros(B, L)
        y[rows, cols] = 1.0
        opt.zero_grad()
        loss = loss_fn(e @ param.T, y)
        loss.backward()
        opt.step()
        assert abs(head.loss(emb, rows, cols) - loss.item() / B) < 1e-5 * loss.item() / B
        de = head.step(emb, rows, cols, lr)
        torch.testing.assert_close(de, e.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(head.dequantized(), param.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp8", "bf16", "fp32"])
def test_chunked_step_equals_unchunked(precision, backend):
    # the random bits of a weight depend on its row, not its chunk, so chunking changes only the
    # fp32 summation order of the logits: dE within 1e-5, and a weight may differ only where its
    # update lies within fp32 noise of a rounding boundary (rare: <= 0.2% of the weights, by one
    # representable step, 2^-3 relative for e4m3 / 2^-7 for bf16)
    # (cpu-bf16: each chunk's dE is rounded to bf16 before the sum over chunks, so dE moves by up
    # to 2^-8 relative of its largest contribution; the weights' rule is the same)
    heads = [
        XMCHead(L, D, precision, chunk_size=c, head_ratio=0.2, seed=4, backend=backend)
        for c in (7, 64, L)
    ]
    emb, rows, cols = _batch(20)
    grads = [h.step(emb, rows, cols, 0.3) for h in heads]
    ref = heads[-1].dequantized()
    ulp = {"fp8": 2.0**-3, "bf16": 2.0**-7, "fp32": 0.0}[precision]
    low_gemm = backend == "cpu-bf16" and precision != "fp32"
    for g, h in zip(grads[:-1], heads[:-1], strict=True):
        if low_gemm:
            assert _rel(g, grads[-1]) < 2.0**-7
        else:
            torch.testing.assert_close(g, grads[-1], rtol=1e-5, atol=1e-5)
        w = h.dequantized()
        if precision == "fp32":
            torch.testing.assert_close(w, ref, rtol=1e-5, atol=1e-6)
            continue
        differ = w != ref
        assert float(differ.double().mean()) <= 2e-3
        gap = (w - ref).abs()[differ]
        assert bool((gap <= ulp * ref.abs()[differ] + h.scale * 2.0**-9).all())
        if h.compensation is not None:
            torch.testing.assert_close(
                h.compensation.float(), heads[-1].compensation.float(), rtol=0, atol=ulp * 8
            )


def _tiny_updates(kahan_dtype: str, head_ratio: float, lr: float, steps: int):
    """bf16 weights at 1.0 (spacing 2^-8 below) moved ``steps`` times by about ``-2e-3 * lr``,
    far below half a spacing. Returns (head, fp64 exact weights, round-to-nearest weights)."""
    num_labels, dim, batch = 64, 32, 4
    head = XMCHead(num_labels, dim, "bf16", head_ratio=head_ratio, kahan_dtype=kahan_dtype, seed=5)
    head.load_weights(torch.ones(num_labels, dim))
    assert head.scale == 1.0
    emb = torch.full((batch, dim), 1e-3)
    none = torch.empty(0, dtype=torch.int64)
    exact = torch.ones(num_labels, dim, dtype=torch.float64)
    rtn = torch.ones(num_labels, dim, dtype=torch.bfloat16)  # the same steps, round-to-nearest
    for _ in range(steps):
        w = head.dequantized()
        _, nxt = _fp64_step(w, emb, none, none, lr, 0.0, low=True)
        exact += nxt - w.double()
        _, nxt = _fp64_step(rtn.float(), emb, none, none, lr, 0.0, low=True)
        rtn = nxt.float().to(torch.bfloat16)
        head.step(emb, none, none, lr)
    return head, exact, rtn


@pytest.mark.parametrize(("kahan_dtype", "lr", "steps"), [("bf16", 0.01, 300), ("e5m2", 0.1, 30)])
def test_kahan_recovers_what_rounding_loses(kahan_dtype, lr, steps):
    # Updates of 1/200 (bf16 buffer) or 1/20 (e5m2 buffer: its 2 mantissa bits would round
    # smaller ones away, docs/head.md) of a spacing, summing to about 1.5 spacings: round-to-
    # nearest freezes the weights; Kahan keeps w - c == 1 + sum of updates up to the buffer's own
    # rounding (relative 2^-9 for bf16 of |c| <= 2^-7, added up over the steps, for the bf16
    # buffer), so w is the exact sum rounded: error RMS below 0.6 spacings, where plain
    # stochastic rounding's random walk is at 1.2 spacings.
    head, exact, rtn = _tiny_updates(kahan_dtype, 1.0, lr, steps)
    w = head.dequantized().double()
    total = float((exact - 1).mean())
    assert -8e-3 < total < -4e-3, "the test wants updates summing to about 1.5 spacings"
    assert bool((rtn == 1).all()), "round-to-nearest freezes here"
    assert abs(float((w - 1).mean()) - total) < 0.1 * abs(total)
    assert float((w - exact).pow(2).mean().sqrt()) < 0.6 * 2.0**-8
    if kahan_dtype == "bf16":
        bound = steps * 2.0**-9 * 2.0**-7
        assert float((w - head.compensation.double() - exact).abs().max()) < bound
    plain, exact_sr, _ = _tiny_updates(kahan_dtype, 0.0, lr, steps)
    w_sr = plain.dequantized().double()
    assert float((w_sr - exact_sr).pow(2).mean().sqrt()) > 2.0**-8, "SR alone should drift"


def test_only_the_kahan_rows_have_a_buffer_and_they_are_the_frequent_labels():
    counts = torch.zeros(L)
    frequent = torch.tensor([300, 5, 77, 150])
    counts[frequent] = torch.tensor([50.0, 40.0, 30.0, 20.0])
    head = XMCHead(L, D, "fp8", head_ratio=4 / L, label_counts=counts, seed=6)
    assert head.compensation.shape == (4, D)
    assert sorted(head.perm[:4].tolist()) == sorted(frequent.tolist())
    w = torch.randn(L, D) * 0.05
    head.load_weights(w)
    deq = head.dequantized()
    assert torch.allclose(deq, w, rtol=2.0**-3, atol=head.scale * 2.0**-9)
    emb, rows, cols = _batch(7)
    before = head.compensation.float().clone()
    head.step(emb, rows, cols, 0.5)
    assert not torch.equal(head.compensation.float(), before), "the Kahan rows must be updated"
