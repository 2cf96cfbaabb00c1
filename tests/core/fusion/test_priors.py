"""The text priors and the fusion, each against a dense fp64 reference computed here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from elmo_core.fusion import FusedScorer, LabelTextScorer, NeighbourScorer, fuse_topk, row_topk

TEXTS = [
    "libfoo-dev: development files for foo",
    "foo-utils: command line tools for foo",
    "python3-bar: bar bindings for python",
    "bar-doc: documentation of bar",
    "libbaz1: shared library for baz",
    "baz: the baz program",
]
LABEL_TEXTS = ["libfoo1: foo shared library", "python3: interpreter", "libbar0: bar library"]
LABELS = sp.csr_matrix(
    np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]], np.float32)
)


def test_row_topk_matches_a_dense_sort():
    rng = np.random.default_rng(0)
    dense = rng.random((30, 40)) * (rng.random((30, 40)) < 0.3)
    kept = row_topk(sp.csr_matrix(dense), 4).toarray()
    for row, out in zip(dense, kept, strict=True):
        top = np.argsort(-row, kind="stable")[: min(4, np.count_nonzero(row))]
        assert set(np.flatnonzero(out)) == set(top)
        assert np.allclose(out[top], row[top])


def test_label_text_scores_are_cosines_of_the_char_rows():
    scorer = LabelTextScorer.fit(TEXTS, LABEL_TEXTS, ngram_range=(3, 5), min_df=1, top=2)
    queries = ["libfoo-dev: files for foo", "python3 bar"]
    x = scorer.featurizer.transform(queries).toarray().astype(np.float64)
    labels = scorer.featurizer.transform(LABEL_TEXTS).toarray().astype(np.float64)
    cos = x @ labels.T
    got = scorer.scores(queries).toarray()
    for row in range(len(queries)):
        top = np.argsort(-cos[row], kind="stable")[:2]
        np.testing.assert_allclose(got[row, top], cos[row, top], atol=1e-6)
        assert np.count_nonzero(got[row]) <= 2
    assert got[0].argmax() == 0  # libfoo-dev is closest to libfoo1


def test_neighbour_vote_is_the_normalised_similarity_weighted_label_sum():
    scorer = NeighbourScorer.fit(TEXTS, LABELS, k=2)
    queries = ["development files for foo", "bar documentation"]
    x = scorer.featurizer.transform(queries).toarray().astype(np.float64)
    train = scorer.featurizer.transform(TEXTS).toarray().astype(np.float64)
    sims = x @ train.T
    got = scorer.scores(queries).toarray()
    for row in range(len(queries)):
        nearest = np.argsort(-sims[row], kind="stable")[:2]
        weights = sims[row, nearest] / sims[row, nearest].sum()
        expected = weights @ LABELS.toarray()[nearest]
        np.testing.assert_allclose(got[row], expected, atol=1e-6)
        assert got[row].sum() == pytest.approx(LABELS.toarray()[nearest].sum(1) @ weights)


@pytest.mark.parametrize("power", [0.5, 3.0])
def test_neighbours_vote_with_their_similarity_to_a_power(power):
    scorer = NeighbourScorer.fit(TEXTS, LABELS, k=3, power=power)
    queries = ["development files for foo", "bar bindings documentation"]
    x = scorer.featurizer.transform(queries).toarray().astype(np.float64)
    sims = x @ scorer.featurizer.transform(TEXTS).toarray().astype(np.float64).T
    got = scorer.scores(queries).toarray()
    for row in range(len(queries)):
        nearest = np.argsort(-sims[row], kind="stable")[:3]
        weights = sims[row, nearest] ** power / (sims[row, nearest] ** power).sum()
        np.testing.assert_allclose(got[row], weights @ LABELS.toarray()[nearest], atol=1e-6)
    assert scorer.meta()["power"] == power
    with pytest.raises(ValueError, match="power must be positive"):
        NeighbourScorer.fit(TEXTS, LABELS, k=3, power=0.0)


def test_a_neighbour_prior_saved_without_a_power_votes_with_power_one():
    scorer = NeighbourScorer.fit(TEXTS, LABELS, k=3)
    meta = {key: value for key, value in scorer.meta().items() if key != "power"}
    loaded = NeighbourScorer.from_state(meta, scorer.tensors())
    assert loaded.power == 1.0
    queries = ["bar documentation"]
    assert abs(loaded.scores(queries) - scorer.scores(queries)).max() == 0


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_fuse_topk_against_a_dense_reference(temperature):
    rng = np.random.default_rng(1)
    num_rows, num_labels, width = 6, 50, 8
    logits = (3.0 * rng.normal(size=(num_rows, width))).astype(np.float32)
    ids = np.stack([rng.choice(num_labels, width, replace=False) for _ in range(num_rows)])
    priors = sp.csr_matrix(rng.random((num_rows, num_labels)) * (rng.random((6, 50)) < 0.2))
    scores, top = fuse_topk(logits, ids, priors, 2.0, 5, temperature=temperature)
    dense = priors.toarray().astype(np.float64)
    for row in range(num_rows):
        dense[row, ids[row]] += 1.0 / (1.0 + np.exp(-logits[row].astype(np.float64) / temperature))
        order = np.argsort(-dense[row], kind="stable")[:5]
        assert list(top[row]) == list(order)
        np.testing.assert_allclose(scores[row], dense[row, order] / 2.0, rtol=1e-6)


def test_fused_scorer_saves_and_loads_to_the_same_priors(tmp_path):
    fused = FusedScorer.fit(
        TEXTS,
        LABELS,
        LABEL_TEXTS,
        label_text_weight=0.5,
        neighbour_weight=0.25,
        neighbours=3,
        candidates=2,
        char_ngrams=(3, 5),
        min_df=1,
    )
    assert fused.scale == pytest.approx(1.75)
    queries = ["libfoo tools", "python bar bindings", "nothing known here zzz"]
    before = fused.priors(queries, 3)
    fused.save(tmp_path)
    loaded = FusedScorer.load(tmp_path)
    assert abs(loaded.priors(queries, 3) - before).max() == 0
    assert before[2].nnz == 0
    assert loaded.head_temperature == 1.0
    assert FusedScorer.load(tmp_path / "missing") is None
    fused.with_weights(0.25, 0.5, 2.0).save(tmp_path)
    assert FusedScorer.load(tmp_path).head_temperature == 2.0
    # a model saved before the head temperature existed scores with T = 1, as it did
    meta = json.loads((tmp_path / "fusion.json").read_text())
    del meta["head_temperature"]
    (tmp_path / "fusion.json").write_text(json.dumps(meta))
    assert FusedScorer.load(tmp_path).head_temperature == 1.0
    with pytest.raises(ValueError, match="head temperature must be positive"):
        fused.with_weights(0.25, 0.5, 0.0)


def test_a_prior_with_weight_zero_is_not_built():
    fused = FusedScorer.fit(
        TEXTS,
        LABELS,
        None,
        label_text_weight=0.5,
        neighbour_weight=0.0,
        neighbours=3,
        candidates=2,
        char_ngrams=(3, 5),
        min_df=1,
    )
    assert fused.label_text is None and fused.neighbours is None and not fused.active


def fitted_priors() -> FusedScorer:
    return FusedScorer.fit(
        TEXTS,
        LABELS,
        LABEL_TEXTS,
        label_text_weight=0.5,
        neighbour_weight=0.25,
        neighbours=3,
        candidates=2,
        char_ngrams=(3, 5),
        min_df=1,
    )


def test_priors_log_each_search_and_respect_the_planned_caps(tmp_path, monkeypatch):
    from elmo_core.fusion import fused as fused_module

    fused = fitted_priors()
    queries = ["libfoo tools", "python bar bindings"]
    lines: list[str] = []
    fused.plan_searches(TEXTS, texts=1000, workers=1, log=lines.append)
    assert [line.split(":")[0] for line in lines] == ["label-text prior", "neighbour prior"]
    assert all("cap for 1,000 texts" in line and "every feature" in line for line in lines)
    lines.clear()
    free = fused.priors(queries, 3, device="cpu", workers=1, log=lines.append)
    assert abs(free - fused.priors(queries, 3)).max() == 0
    assert [line.split(":")[0] for line in lines] == ["label-text prior"] * 2 + [
        "neighbour prior"
    ] * 2
    assert "every feature" in lines[0] and "every feature" in lines[2]
    assert lines[1].startswith("label-text prior: 2 texts in ") and "search" in lines[1]
    assert lines[3].startswith("neighbour prior: 2 texts in ") and "votes" in lines[3]
    # A budget no search fits: both priors are off, for this model's life.
    monkeypatch.setattr(fused_module, "PRIOR_MIN_BUDGET_S", 0.0)
    monkeypatch.setattr(fused_module, "PRIOR_BUDGET_S_PER_TEXT", 1e-15)
    lines.clear()
    fused.plan_searches(TEXTS, texts=1000, workers=1, log=lines.append)
    assert len(lines) == 2 and all("OFF" in line for line in lines)
    off = fused.priors(queries, 3, workers=1)
    assert off.shape == (2, 3) and off.nnz == 0
    fused.save(tmp_path)
    assert FusedScorer.load(tmp_path).priors(queries, 3, workers=1).nnz == 0


def test_a_planned_cap_is_saved_and_applied_to_single_texts(tmp_path, monkeypatch):
    """The cap decided for a large split is stored; one text (a served request) is then scored
    with the same features as in the batch (an evaluation), before and after a save/load."""
    from elmo_core.fusion import fused as fused_module

    fused = fitted_priors()
    queries = ["libfoo tools", "python bar bindings", "foo bar library"]
    full = fused.priors(queries, 3, workers=1).toarray()
    # A budget that affords about half the label-text search: its commonest n-grams go.
    monkeypatch.setattr(fused_module, "PRIOR_MIN_BUDGET_S", 0.0)
    cost = fused.label_text.index._cost(
        fused.label_text.featurizer.transform(TEXTS), fused_module.SearchOptions(workers=1)
    )
    monkeypatch.setattr(fused_module, "PRIOR_BUDGET_S_PER_TEXT", 0.7 * cost.seconds() / len(TEXTS))
    fused.plan_searches(TEXTS, texts=len(TEXTS), workers=1)
    cap = fused.label_text.index.max_df
    assert cap is not None and 0 < cap < fused.label_text.index.document_frequencies.max()
    capped = fused.priors(queries, 3, workers=1).toarray()
    assert not np.allclose(capped, full)
    fused.save(tmp_path)
    loaded = FusedScorer.load(tmp_path)
    assert loaded.label_text.index.max_df == cap
    for row, text in enumerate(queries):
        single = loaded.priors([text], 3, workers=1).toarray()[0]
        np.testing.assert_array_equal(single, capped[row])


def test_neighbour_votes_keep_the_top_per_row_in_blocks(monkeypatch):
    """`top` keeps each row's largest votes, the same whether the rows go in one block or many."""
    from elmo_core.fusion import neighbours

    scorer = NeighbourScorer.fit(TEXTS, LABELS, k=3)
    queries = [*TEXTS, "foo bar baz library"]
    full = scorer.scores(queries).toarray()
    monkeypatch.setattr(neighbours, "VOTE_BLOCK", 2)
    kept = scorer.scores(queries, top=1).toarray()
    for row, out in zip(full, kept, strict=True):
        assert np.count_nonzero(out) == min(1, np.count_nonzero(row))
        if np.count_nonzero(row):
            best = np.argsort(-row, kind="stable")[0]
            assert out[best] == pytest.approx(row[best], rel=1e-6)


def test_the_default_prior_budget_grows_with_the_texts_past_a_floor():
    from elmo_core.fusion import prior_budget_s

    assert prior_budget_s(10) == prior_budget_s(600_000) == 30.0
    assert prior_budget_s(1_000_000) == pytest.approx(50.0)
    assert prior_budget_s(2_000_000) == pytest.approx(2 * prior_budget_s(1_000_000))


@pytest.mark.gpu
def test_neighbour_votes_on_the_gpu_equal_the_cpu_ones():
    """The votes' product and top-k on the device (the posting-list engine) give the CPU's votes,
    up to float32 summation order (atol 1e-6 on votes in [0, 1])."""
    import torch

    from elmo_core.fusion.similarity import SearchOptions

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    neighbours = fitted_priors().neighbours
    queries = ["libfoo tools", "python bar bindings", "foo bar library", "nothing alike"]
    for top in (1, 3):
        on_cpu = neighbours.scores(queries, options=SearchOptions(workers=1), top=top)
        on_gpu = neighbours.scores(
            queries, options=SearchOptions(device=torch.device("cuda")), top=top
        )
        np.testing.assert_allclose(on_gpu.toarray(), on_cpu.toarray(), atol=1e-6)


@pytest.mark.gpu
def test_both_priors_on_the_gpu_equal_the_cpu_ones():
    """Both priors' scores with the searches on the device, the vote powers from one search:
    the CPU engines' (atol 1e-6)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    fused = fitted_priors()
    queries = ["libfoo tools", "python bar bindings", "foo bar library", "nothing alike"]
    on_gpu = fused.prior_scores(queries, 3, device=torch.device("cuda"), vote_powers=[1, 3])
    on_cpu = fused.prior_scores(queries, 3, workers=1, vote_powers=[1, 3])
    assert on_gpu.votes_by_power is not None and on_cpu.votes_by_power is not None
    pairs = [(on_gpu.neighbours, on_cpu.neighbours), (on_gpu.label_text, on_cpu.label_text)]
    pairs += [(on_gpu.votes_by_power[p], on_cpu.votes_by_power[p]) for p in (1, 3)]
    for got, expected in pairs:
        np.testing.assert_allclose(got.toarray(), expected.toarray(), atol=1e-6)
