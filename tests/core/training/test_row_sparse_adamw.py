"""RowSparseAdamW: lazy AdamW on the touched rows of a table with sparse gradients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from optimi import AdamW
from safetensors.torch import load_file
from torch import nn

from elmo_core.training import TrainerCallbacks, TrainingCancelled, train
from elmo_core.training.row_sparse_adamw import RowSparseAdamW

ROWS, DIM = 200, 16
BETAS, EPS = (0.9, 0.99), 1e-6


def sparse_grad(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """An uncoalesced sparse gradient (rows may repeat, as EmbeddingBag's do)."""
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, (ROWS, DIM), check_invariants=True)


def batches(steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        rows = torch.randint(0, ROWS // 2, (60,), generator=gen)  # repeats; rows >= 100 untouched
        out.append((rows, torch.randn(60, DIM, generator=gen, dtype=torch.float64)))
    return out


def reference(
    weight: torch.Tensor, steps: list[tuple[torch.Tensor, torch.Tensor]], lr: float, wd: float
) -> torch.Tensor:
    """Float64 lazy AdamW (textbook bias correction, per-row step counts) on the touched rows."""
    w = weight.to(torch.float64).clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    t = torch.zeros(ROWS, dtype=torch.int64)
    b1, b2 = BETAS
    for rows, values in steps:
        g = torch.zeros_like(w).index_add_(0, rows, values)
        for r in rows.unique().tolist():
            t[r] += 1
            m[r] = b1 * m[r] + (1 - b1) * g[r]
            v[r] = b2 * v[r] + (1 - b2) * g[r] ** 2
            m_hat = m[r] / (1 - b1 ** int(t[r]))
            v_hat = v[r] / (1 - b2 ** int(t[r]))
            w[r] = w[r] * (1 - lr * wd) - lr * m_hat / (v_hat.sqrt() + EPS)
    return w


def run(
    weight: torch.Tensor,
    steps: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    wd: float = 0.0,
    kahan: bool = False,
) -> tuple[torch.Tensor, RowSparseAdamW]:
    p = nn.Parameter(weight.clone())
    opt = RowSparseAdamW([p], lr=lr, weight_decay=wd, kahan_sum=kahan)
    for rows, values in steps:
        p.grad = sparse_grad(rows, values.to(p.dtype))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return p.detach(), opt


def test_matches_a_float64_lazy_adamw_and_leaves_untouched_rows_alone():
    torch.manual_seed(0)
    weight = torch.randn(ROWS, DIM)
    steps = batches(12)
    got, opt = run(weight, steps, lr=1e-2, wd=0.1)
    want = reference(weight, steps, lr=1e-2, wd=0.1)
    touched = torch.cat([rows for rows, _ in steps]).unique()
    untouched = torch.ones(ROWS, dtype=torch.bool)
    untouched[touched] = False
    assert untouched.sum() >= ROWS // 2
    assert torch.equal(got[untouched], weight[untouched])
    moved = (got[touched].double() - weight[touched].double()).abs().max()
    assert moved > 1e-2
    torch.testing.assert_close(got[touched].double(), want[touched], rtol=1e-6, atol=1e-6)
    counts = opt.state[opt.param_groups[0]["params"][0]]["step"]
    assert counts[untouched].eq(0).all() and counts[touched].gt(0).all()


def test_rows_touched_every_step_follow_optimi_adamw():
    torch.manual_seed(1)
    weight = torch.randn(ROWS, DIM)
    dense = nn.Parameter(weight.clone())
    opt = AdamW([dense], lr=1e-2, weight_decay=0.1, foreach=False, triton=False)
    steps = []
    for _ in range(8):
        values = torch.randn(ROWS, DIM, dtype=torch.float64)
        steps.append((torch.arange(ROWS), values))
        dense.grad = values.float()
        opt.step()
    got, _ = run(weight, steps, lr=1e-2, wd=0.1)
    torch.testing.assert_close(got, dense.detach(), rtol=1e-5, atol=1e-6)


def test_bf16_with_kahan_tracks_fp32_much_better_than_without():
    torch.manual_seed(2)
    weight = torch.randn(ROWS, DIM).bfloat16().float()  # representable in bf16
    # gradients with a mean: the weights drift by about lr per touch, an update far below half
    # a bf16 ulp of weights ~1 (2^-8), which plain bf16 rounds away
    steps = [(rows, values + 1) for rows, values in batches(400, seed=3)]
    lr = 1e-3
    exact, _ = run(weight, steps, lr=lr)
    kahan, _ = run(weight.bfloat16(), steps, lr=lr, kahan=True)
    plain, _ = run(weight.bfloat16(), steps, lr=lr, kahan=False)
    moved = (exact - weight).norm()
    err_kahan = (kahan.float() - exact).norm()
    err_plain = (plain.float() - exact).norm()
    assert err_kahan < 0.05 * moved
    assert err_kahan * 20 < err_plain  # measured: 0.067 against 4.6 (moved 5.2)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(4)
    weight = torch.randn(ROWS, DIM).bfloat16()
    steps = batches(10, seed=5)
    full, _ = run(weight, steps, lr=1e-3, wd=0.01, kahan=True)
    first, opt = run(weight, steps[:4], lr=1e-3, wd=0.01, kahan=True)
    saved = {k: v for k, v in opt.state_dict().items()}
    state = next(iter(saved["state"].values()))
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "kahan_comp"}
    assert state["step"].dtype == torch.int32 and state["kahan_comp"].dtype == torch.bfloat16
    p = nn.Parameter(first.clone())
    resumed = RowSparseAdamW([p], lr=1e-3, weight_decay=0.01, kahan_sum=True)
    resumed.load_state_dict(saved)
    assert resumed.state[p]["step"].dtype == torch.int32
    for rows, values in steps[4:]:
        p.grad = sparse_grad(rows, values.to(p.dtype))
        resumed.step()
    assert torch.equal(p.detach(), full)


def test_embedding_bag_sparse_gradient_drives_it():
    torch.manual_seed(6)
    bag = nn.EmbeddingBag(ROWS, DIM, mode="sum", sparse=True).bfloat16()
    before = bag.weight.detach().clone()
    opt = RowSparseAdamW(bag.parameters(), lr=1e-2, kahan_sum=True)
    indices = torch.tensor([3, 7, 3, 11, 7])
    out = bag(indices, torch.tensor([0, 2]), per_sample_weights=torch.ones(5).bfloat16())
    out.float().sum().backward()
    assert bag.weight.grad is not None and bag.weight.grad.is_sparse
    opt.step()
    changed = (bag.weight.detach() != before).any(dim=1).nonzero().squeeze(1)
    assert changed.tolist() == [3, 7, 11]


def test_a_tfidf_run_with_mlp_blocks_resumes_exactly_with_both_optimizers(
    mini_dataset, tmp_path, small_config
):
    """On the CPU the table goes to RowSparseAdamW ("rows.optim.*"), the MLP blocks to optimi's
    AdamW ("optim.*"); both states are checkpointed and a resume ends bit-identical."""

    class StopAfter(TrainerCallbacks):
        def __init__(self) -> None:
            self.seen = 0

        def should_stop(self) -> bool:
            self.seen += 1
            return self.seen >= 5

    config = small_config(encoder={"mlp_layers": 1}, head={"head_ratio": 0.1})
    full = train(config, mini_dataset, tmp_path / "full")
    with pytest.raises(TrainingCancelled):
        train(config, mini_dataset, tmp_path / "cut", StopAfter())
    saved = load_file(
        str(tmp_path / "cut" / "checkpoints" / "step-00000005" / "tensors.safetensors")
    )
    assert saved["rows.optim.0.step"].dtype == torch.int32
    assert saved["rows.optim.0.kahan_comp"].shape == saved["encoder.embedding.weight"].shape
    assert "optim.0.exp_avg" in saved  # the first MLP linear's weight
    resumed = train(config, mini_dataset, tmp_path / "cut", resume=True)
    assert resumed.history == full.history and resumed.metrics == full.metrics
    a = load_file(str(full.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _previous_update(
    p: torch.Tensor,
    grad: torch.Tensor,
    state: dict[str, torch.Tensor],
    lr: float,
    wd: float,
    sqrt: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """RowSparseAdamW's update before the fused CPU kernel (gather, fp32 torch ops, scatter), with
    ``sqrt`` the square root of the stored second moments (``torch.sqrt`` as it ran)."""
    indices, values = grad._indices()[0], grad._values().float()
    rows, inverse = torch.unique(indices, sorted=True, return_inverse=True)
    summed = values.new_zeros((rows.numel(), values.shape[1])).index_add_(0, inverse, values)
    steps = state["step"].index_select(0, rows) + 1
    state["step"].index_copy_(0, rows, steps)
    t = steps.to(torch.float64).unsqueeze(1)
    (beta1, beta2), kahan = BETAS, "kahan_comp" in state
    beta1_hat = ((beta1**t - beta1) / (beta1**t - 1)).float()
    beta2_hat = ((beta2**t - beta2) / (beta2**t - 1)).float()
    exp_avg = state["exp_avg"].index_select(0, rows).float()
    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).float()
    exp_avg.mul_(beta1_hat).add_((1 - beta1_hat) * summed)
    exp_avg_sq.mul_(beta2_hat).add_((1 - beta2_hat) * summed * summed)
    state["exp_avg"].index_copy_(0, rows, exp_avg.to(p.dtype))
    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq.to(p.dtype))
    update = state["exp_avg"].index_select(0, rows).float()
    update.div_(sqrt(state["exp_avg_sq"].index_select(0, rows).float()).add_(EPS))
    weights = p.index_select(0, rows).float()
    if wd != 0:
        weights.mul_(1 - lr * wd)
    weights.add_(update, alpha=-lr)
    if kahan:
        comp = state["kahan_comp"]
        weights.add_(comp.index_select(0, rows).float())
        rounded = weights.to(p.dtype)
        comp.index_copy_(0, rows, (weights - rounded.float()).to(p.dtype))
        p.index_copy_(0, rows, rounded)
    else:
        p.index_copy_(0, rows, weights.to(p.dtype))


def _ieee_sqrt(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded fp32 square root (numpy's); torch's CPU sqrt is within an ulp."""
    return torch.from_numpy(np.sqrt(x.numpy()))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bits, any NaN matching any NaN at the same place."""
    nan = torch.isnan(b.float())
    if not torch.equal(torch.isnan(a.float()), nan):
        return False
    width = torch.int16 if a.element_size() == 2 else torch.int32
    return torch.equal(a.view(width)[~nan], b.view(width)[~nan])


@pytest.mark.parametrize(
    ("dtype", "kahan", "wd"),
    [(torch.bfloat16, True, 0.0), (torch.bfloat16, True, 0.1), (torch.bfloat16, False, 0.01),
     (torch.float32, False, 0.01)],
)  # fmt: skip
def test_fused_cpu_update_is_the_previous_torch_update(dtype, kahan, wd):
    # The fused kernel gives the torch implementation's bits when both take an IEEE sqrt; with
    # torch's own sqrt (one ulp off for about 17% of inputs) the moments stay bit-identical and
    # a few weights move by a rounding step. Small weights and lr 1e-2: updates cancel weights.
    gen = torch.Generator().manual_seed(8)
    weight = (torch.randn(ROWS, DIM, generator=gen) * 0.02).to(dtype)
    steps = batches(12, seed=9)
    edges = torch.tensor([0.0, -0.0, 1e30, -1e30, 1e-30, 3.0, float("nan")], dtype=torch.float64)
    for i, (_, values) in enumerate(steps):
        values[i % 5, : edges.numel()] = edges  # NaN poisons one row: NaN stays NaN
        values[5 + i % 3] *= 1e-3
    lr = 1e-2
    got, opt = run(weight, steps, lr=lr, wd=wd, kahan=kahan)
    fused = opt.state[opt.param_groups[0]["params"][0]]
    for sqrt in (_ieee_sqrt, torch.sqrt):
        p = weight.clone()
        state = {"step": torch.zeros(ROWS, dtype=torch.int32)}
        keys = ["exp_avg", "exp_avg_sq"] + ["kahan_comp"] * kahan
        state.update({k: torch.zeros_like(p) for k in keys})
        for rows, values in steps:
            _previous_update(p, sparse_grad(rows, values.to(dtype)), state, lr, wd, sqrt)
        assert torch.equal(state["step"], fused["step"])
        assert _same(state["exp_avg"], fused["exp_avg"])
        assert _same(state["exp_avg_sq"], fused["exp_avg_sq"])
        if sqrt is _ieee_sqrt:
            assert _same(got, p)
            if kahan:
                assert _same(fused["kahan_comp"], state["kahan_comp"])
        else:
            # bf16: a weight may round the other way (one step, 2^-7 relative); fp32: each step
            # moves it by lr times an fp32 ulp of the update, at most
            finite = torch.isfinite(p.float())
            rtol, atol = (2**-7, 0.0) if dtype == torch.bfloat16 else (2**-20, 1e-7)
            torch.testing.assert_close(got.float()[finite], p.float()[finite], rtol=rtol, atol=atol)
            if dtype == torch.bfloat16:
                assert float((got != p)[finite].double().mean()) < 0.01
    assert bool(torch.isnan(got.float()).any())
    assert float(torch.isfinite(got.float()).double().mean()) > 0.9


def test_fused_dense_gradient_equals_the_sparse_one():
    torch.manual_seed(10)
    weight = torch.randn(ROWS, DIM).bfloat16()
    rows = torch.randperm(ROWS)[:50]
    values = torch.randn(50, DIM, dtype=torch.float64)
    sparse, _ = run(weight, [(rows, values)], lr=1e-2, wd=0.1, kahan=True)
    p = nn.Parameter(weight.clone())
    opt = RowSparseAdamW([p], lr=1e-2, weight_decay=0.1, kahan_sum=True)
    p.grad = torch.zeros(ROWS, DIM, dtype=torch.bfloat16).index_copy_(0, rows, values.bfloat16())
    opt.step()
    assert torch.equal(p.detach(), sparse) and not torch.equal(sparse, weight)
