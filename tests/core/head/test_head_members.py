"""Member heads: each steps as a head of its own; the merged head scores their mean logit."""

from __future__ import annotations

import pytest
import torch

from elmo_core.head import MemberHeads, XMCHead

LABELS, WIDTH = 300, 9  # each member: 8 embedding columns + its bias column


def _columns() -> list[torch.Tensor]:
    """The merged layout of two members of 8 columns: blocks 0-7 and 8-15, bias columns 16, 17."""
    return [
        torch.tensor([*range(0, 8), 16]),
        torch.tensor([*range(8, 16), 17]),
    ]


CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ],
)


def _heads(
    precision: str,
    seeds: tuple[int, int] = (0, 1),
    stds=(0.05, 0.05),
    head_ratio: float = 0.0,
    device: str = "cpu",
) -> list[XMCHead]:
    counts = torch.arange(LABELS, 0, -1).roll(7)  # Kahan rows: a permuted storage order
    return [
        XMCHead(
            LABELS,
            WIDTH,
            precision=precision,
            init_std=std,
            seed=seed,
            device=device,
            head_ratio=head_ratio,
            label_counts=counts,
        )
        for seed, std in zip(seeds, stds, strict=True)
    ]


def _batch(seed: int = 0, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.randn(6, 2 * WIDTH, generator=gen)
    rows = torch.arange(6).repeat_interleave(2)
    cols = torch.randint(0, LABELS, (12,), generator=gen)
    return embedding.to(device), rows.to(device), cols.to(device)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp8"])
def test_members_step_exactly_as_heads_of_their_own(precision, device):
    members = MemberHeads(_heads(precision, device=device), _columns(), 2 * WIDTH)
    alone = _heads(precision, device=device)
    for step in range(3):
        embedding, rows, cols = _batch(step, device)
        grad = members.step(embedding, rows, cols, lr=0.5)
        for head, own, columns in zip(members.heads, alone, _columns(), strict=True):
            own_grad = own.step(embedding[:, columns.to(device)], rows, cols, lr=0.5)
            assert torch.equal(grad[:, columns.to(device)], own_grad)
            assert torch.equal(head.weight, own.weight)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize(("precision", "head_ratio"), [("fp32", 0.0), ("fp8", 0.0), ("fp8", 0.1)])
def test_the_merged_head_scores_the_members_mean_logit(precision, head_ratio, device):
    heads = _heads(precision, head_ratio=head_ratio, device=device)
    members = MemberHeads(heads, _columns(), 2 * WIDTH)
    assert (members.heads[0].perm is not None) == (head_ratio > 0)
    embedding, rows, cols = _batch(device=device)
    members.step(embedding, rows, cols, lr=0.5)
    halves = [head.dequantized().double().cpu() / 2 for head in members.heads]
    expected_weights = torch.empty(LABELS, 2 * WIDTH, dtype=torch.float64)
    for half, columns in zip(halves, _columns(), strict=True):
        expected_weights[:, columns] = half
    # halving is exact in binary floats: the merged head holds the members' weights / 2 exactly
    assert torch.equal(members.merged().dequantized().double().cpu(), expected_weights)
    query = torch.randn(4, 2 * WIDTH, generator=torch.Generator().manual_seed(7))
    mean_logit = sum(
        query[:, columns].double() @ half.T
        for half, columns in zip(halves, _columns(), strict=True)
    )
    values, ids = members.topk(query.to(device), LABELS)
    got = torch.empty_like(mean_logit).scatter_(1, ids.cpu(), values.double().cpu())
    # fp32: float32 products; fp8: the embedding rounded to bf16 for the products (2^-8)
    tolerance = 1e-5 if precision == "fp32" else 2e-2
    torch.testing.assert_close(got, mean_logit, rtol=tolerance, atol=tolerance)


def test_members_of_different_scales_are_rounded_to_one():
    members = MemberHeads(_heads("fp8", stds=(0.05, 0.8)), _columns(), 2 * WIDTH)
    assert members.heads[0].scale != members.heads[1].scale
    expected = torch.empty(LABELS, 2 * WIDTH)
    for head, columns in zip(members.heads, _columns(), strict=True):
        expected[:, columns] = head.dequantized() / 2
    got = members.merged().dequantized()
    # re-rounded to nearest e4m3 (3 mantissa bits: half an ulp is 1/16 of a value) at one scale;
    # values far below the new scale's smallest normal lose more, in absolute terms only
    torch.testing.assert_close(got, expected, rtol=1 / 16, atol=members.merged().scale * 2**-7)


def test_a_step_drops_the_cached_merged_head():
    members = MemberHeads(_heads("fp8"), _columns(), 2 * WIDTH)
    before = members.merged()
    assert members.merged() is before
    members.step(*_batch(), lr=0.5)
    assert members.merged() is not before


def test_state_dict_round_trip_restores_every_member():
    trained = MemberHeads(_heads("fp8"), _columns(), 2 * WIDTH)
    trained.step(*_batch(), lr=0.5)
    state = trained.state_dict()
    assert {"member0.weight", "member1.weight", "member0.seed", "member1.step"} <= set(state)
    fresh = MemberHeads(_heads("fp8", seeds=(5, 6)), _columns(), 2 * WIDTH)
    fresh.load_state_dict(state)
    for got, want in zip(fresh.heads, trained.heads, strict=True):
        assert torch.equal(got.weight, want.weight) and got.steps == want.steps == 1


def test_load_weights_gives_each_member_its_columns():
    members = MemberHeads(_heads("fp32"), _columns(), 2 * WIDTH)
    weights = torch.arange(LABELS * 2 * WIDTH, dtype=torch.float32).reshape(LABELS, -1) / 1000
    members.load_weights(weights)
    for head, columns in zip(members.heads, _columns(), strict=True):
        assert torch.equal(head.dequantized(), weights[:, columns])


def test_columns_must_cover_the_embedding_once():
    overlapping = [torch.tensor([*range(0, 8), 16]), torch.tensor([*range(7, 15), 17])]
    with pytest.raises(ValueError, match="cover"):
        MemberHeads(_heads("fp32"), overlapping, 2 * WIDTH)
    with pytest.raises(ValueError, match="at least two"):
        MemberHeads(_heads("fp32")[:1], _columns()[:1], WIDTH)
