"""Fusion weights and head temperature fitted on the validation slice: the grid search on
constructed priors (an informative one and noise, ties), the priors re-weighted exactly as `priors`
weights them, and a trained model that stores, serves and reports the fitted weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from elmo_core.cli.main import app
from elmo_core.config import parse_config
from elmo_core.data import load_dataset
from elmo_core.errors import ConfigError
from elmo_core.fusion import FusedScorer, PriorScores, fit_vote_power, fit_weights, fuse_topk
from elmo_core.fusion.fit import AlignedScores, weight_triples
from elmo_core.inference import Predictor
from elmo_core.metrics import evaluate
from elmo_core.training import TrainConfig, TrainerCallbacks, train
from elmo_core.training.recipe import Recipe

MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"
GRID = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
ROWS, LABELS, WIDTH = 40, 30, 5


def _case(seed: int = 0):
    """Each row has one true label. The head is confident and always wrong (its candidates
    never hold the true label); the neighbour prior gives the true label 1 and the label-text
    prior gives a random wrong label 1 (noise)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, LABELS, ROWS)
    noise = (truth + rng.integers(1, LABELS, ROWS)) % LABELS
    ids = np.stack(
        [rng.choice(np.setdiff1d(np.arange(LABELS), [t]), WIDTH, replace=False) for t in truth]
    )
    logits = np.full((ROWS, WIDTH), 3.0, dtype=np.float32)  # sigmoid 0.95
    rows = np.arange(ROWS)
    one = np.ones(ROWS, dtype=np.float32)
    informative = sp.csr_matrix((one, (rows, truth)), shape=(ROWS, LABELS))
    noisy = sp.csr_matrix((one, (rows, noise)), shape=(ROWS, LABELS))
    labels = sp.csr_matrix((one, (rows, truth)), shape=(ROWS, LABELS))
    return logits, ids, informative, noisy, labels


def _score(labels):
    """Each ranking of a stack scored on its own by `evaluate` (the oracle of the fit's batched
    scoring)."""
    return lambda rankings, ks: [evaluate(ids, labels, ks=ks or [1]) for ids in rankings]


def test_the_informative_prior_wins_with_the_smallest_weight_that_suffices():
    logits, ids, informative, noisy, labels = _case()
    priors = PriorScores((ROWS, LABELS), neighbours=informative, label_text=noisy)
    fit = fit_weights(logits, ids, priors, GRID, 1, _score(labels), "P@1")
    # the true label beats the head's 0.95 and the noise's b once a > 0.95 + b: every such pair
    # scores P@1 100; the smallest a + b among them is (1, 0)
    assert (fit.neighbour_weight, fit.label_text_weight) == (1.0, 0.0)
    assert fit.metrics["P@1"] == 100.0 and fit.combinations == 36
    # swapping the priors' roles swaps the answer
    swapped = PriorScores((ROWS, LABELS), neighbours=noisy, label_text=informative)
    fit = fit_weights(logits, ids, swapped, GRID, 1, _score(labels), "P@1")
    assert (fit.neighbour_weight, fit.label_text_weight) == (0.0, 1.0)


def test_ties_go_to_the_smaller_total_then_the_smaller_neighbour_weight():
    logits, ids, informative, _, labels = _case(1)
    both = PriorScores((ROWS, LABELS), neighbours=informative, label_text=informative)
    fit = fit_weights(logits, ids, both, GRID, 1, _score(labels), "P@1")
    # (0.5, 0.5), (1, 0) and (0, 1) all score 100 with a + b = 1: (0, 1) has the smaller a
    assert (fit.neighbour_weight, fit.label_text_weight) == (0.0, 1.0)
    assert fit.metrics["P@1"] == 100.0
    # a useless pair of priors: the head alone (0, 0) ties everything and comes first
    empty = sp.csr_matrix((ROWS, LABELS), dtype=np.float32)
    none = PriorScores((ROWS, LABELS), neighbours=empty, label_text=empty)
    fit = fit_weights(logits, ids, none, GRID, 1, _score(labels), "P@1")
    assert (fit.neighbour_weight, fit.label_text_weight) == (0.0, 0.0)


def test_each_pair_ranks_exactly_as_fuse_topk_of_the_weighted_priors():
    """The aligned re-fusion is what the saved model computes: the same ids as `fuse_topk`,
    for every pair in a row (a pair must not disturb the next), explicit zeros included."""
    rng = np.random.default_rng(2)
    rows, labels, width = 60, 200, 8
    ids = np.stack([rng.choice(labels, width, replace=False) for _ in range(rows)])
    logits = rng.normal(size=(rows, width)).astype(np.float32)

    def prior() -> sp.csr_matrix:
        dense = rng.random((rows, labels)) * (rng.random((rows, labels)) < 0.05)
        matrix = sp.csr_matrix(dense.astype(np.float32))
        matrix.data[::7] = 0.0  # explicit zeros, as a search may leave
        return matrix

    priors = PriorScores((rows, labels), neighbours=prior(), label_text=prior(), linear=prior())
    aligned = AlignedScores(logits, ids, priors)
    extra = [(0.0, 0.0, 0.0), (0.25, 4.0, 0.0), (0.0, 0.5, 2.0)]
    for a, b, c in [*weight_triples(GRID, True, True, True), *extra]:
        _, expected = fuse_topk(logits, ids, priors.weighted(a, b, c), 1.0 + a + b + c, 6)
        assert np.array_equal(aligned.ranking(a, b, 6, 1.0, c), expected), (a, b, c)


def test_each_pair_ranks_as_fuse_topk_with_ties_zeros_and_short_rows():
    """Coarse values (many ties at the k-th place: broken by the lower label id), head
    probabilities that underflow to 0 (dropped, as the sparse sum drops them), and rows with
    fewer than k entries (padded with -1)."""
    rng = np.random.default_rng(5)
    rows, labels, width, k = 80, 40, 6, 9
    ids = np.stack([rng.choice(labels, width, replace=False) for _ in range(rows)])
    logits = rng.choice([-200.0, 0.0, 2.0], size=(rows, width)).astype(np.float32)

    def prior() -> sp.csr_matrix:
        values = rng.choice([0.0, 0.25, 0.5, 1.0], size=(rows, labels))
        return sp.csr_matrix((values * (rng.random((rows, labels)) < 0.08)).astype(np.float32))

    priors = PriorScores((rows, labels), neighbours=prior(), label_text=prior())
    aligned = AlignedScores(logits, ids, priors)
    shortest = min(np.count_nonzero(row) for row in aligned.head())
    assert shortest < k  # some row has fewer than k entries
    for a, b, _ in [*weight_triples(GRID, True, True), (2.0, 0.5, 0.0)]:
        _, expected = fuse_topk(logits, ids, priors.weighted(a, b), 1.0 + a + b, k)
        assert np.array_equal(aligned.ranking(a, b, k), expected), (a, b)


def test_each_temperature_ranks_exactly_as_fuse_topk_at_that_temperature():
    """The head's probabilities at each temperature, aligned once per temperature, rank as the
    served `fuse_topk(..., temperature=T)` does, in any order of temperatures and pairs."""
    rng = np.random.default_rng(7)
    rows, labels, width, k = 70, 150, 10, 6
    ids = np.stack([rng.choice(labels, width, replace=False) for _ in range(rows)])
    logits = (3.0 * rng.normal(size=(rows, width))).astype(np.float32)
    dense = rng.random((2, rows, labels)) * (rng.random((2, rows, labels)) < 0.06)
    priors = PriorScores(
        (rows, labels),
        neighbours=sp.csr_matrix(dense[0].astype(np.float32)),
        label_text=sp.csr_matrix(dense[1].astype(np.float32)),
    )
    aligned = AlignedScores(logits, ids, priors)
    combinations = [(2.0, 0.5, 0.25), (1.0, 0.5, 0.25), (0.5, 1.0, 1.0), (3.0, 0.25, 4.0)]
    expected_all = []
    for t, a, b in combinations:
        weighted = priors.weighted(a, b)
        _, expected = fuse_topk(logits, ids, weighted, 1.0 + a + b, k, temperature=t)
        assert np.array_equal(aligned.ranking(a, b, k, t), expected), (t, a, b)
        expected_all.append(expected)
    # the fit's batch: every combination ranked in one pass, temperatures interleaved
    stacked = aligned.rankings([(t, a, b, 0.0) for t, a, b in combinations], k)
    assert np.array_equal(stacked, np.stack(expected_all))
    _, at_one = fuse_topk(logits, ids, priors.weighted(0.0, 0.0), 1.0, k)
    _, at_two = fuse_topk(logits, ids, priors.weighted(0.0, 0.0), 1.0, k, temperature=2.0)
    assert np.array_equal(at_one, at_two)  # the head alone keeps its order at any temperature


def test_the_temperature_that_lets_the_prior_decide_wins_ties_to_the_earlier():
    """The head ranks a wrong label (logit 2) above the true one (logit 1); the prior gives the
    true label 0.12. At T = 1 the head's gap is sigmoid(2) - sigmoid(1) = 0.150, so a = 2 is
    needed; at T = 4 it is sigmoid(0.5) - sigmoid(0.25) = 0.060, so a = 1 suffices."""
    rows, labels = 20, 10
    ids = np.tile(np.array([[0, 1]]), (rows, 1))
    logits = np.tile(np.array([[2.0, 1.0]], dtype=np.float32), (rows, 1))
    truth = sp.csr_matrix(np.tile(np.eye(labels, dtype=np.float32)[1], (rows, 1)))
    prior = sp.csr_matrix(np.tile(0.12 * np.eye(labels, dtype=np.float32)[1], (rows, 1)))
    priors = PriorScores((rows, labels), neighbours=prior, label_text=None)
    score = _score(truth)
    # T = 1: 0.12 a > 0.150 needs a = 2
    fit = fit_weights(logits, ids, priors, [0.0, 1.0, 2.0], 1, score, "P@1", (1.0,))
    assert fit.metrics["P@1"] == 100.0 and fit.neighbour_weight == 2.0
    assert fit.head_temperature == 1.0 and fit.combinations == 3
    # both temperatures reach P@1 100 (T = 4 with a smaller a): the earlier temperature wins
    fit = fit_weights(logits, ids, priors, [0.0, 1.0, 2.0], 1, score, "P@1", (1.0, 4.0))
    assert fit.metrics["P@1"] == 100.0 and fit.combinations == 6
    assert (fit.head_temperature, fit.neighbour_weight) == (1.0, 2.0)  # T = 1 came first
    fit = fit_weights(logits, ids, priors, [0.0, 1.0], 1, score, "P@1", (1.0, 4.0))
    assert (fit.head_temperature, fit.neighbour_weight) == (4.0, 1.0)  # only T = 4 can
    with pytest.raises(ValueError, match="no head temperature"):
        fit_weights(logits, ids, priors, [1.0], 1, score, "P@1", ())


def test_a_prior_that_is_off_stays_at_zero():
    assert weight_triples([0.0, 1.0], True, False) == [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)]
    assert weight_triples([2.0, 1.0], False, True) == [(0.0, 1.0, 0.0), (0.0, 2.0, 0.0)]
    assert weight_triples([1.0, 2.0], True, True)[:3] == [
        (1.0, 1.0, 0.0),
        (1.0, 2.0, 0.0),
        (2.0, 1.0, 0.0),
    ]
    assert weight_triples([0.0, 1.0], False, False, True) == [(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    assert weight_triples([1.0], True, True, True) == [(1.0, 1.0, 1.0)]
    assert weight_triples([0.0, 1.0], True, True, True)[1:4] == [
        (0.0, 0.0, 1.0),
        (0.0, 1.0, 0.0),
        (1.0, 0.0, 0.0),
    ]
    logits, ids, informative, _, labels = _case()
    only = PriorScores((ROWS, LABELS), neighbours=None, label_text=informative)
    fit = fit_weights(logits, ids, only, GRID, 1, _score(labels), "P@1")
    assert fit.neighbour_weight == 0.0 and fit.label_text_weight == 1.0 and fit.combinations == 6
    with pytest.raises(KeyError, match="Q@1"):  # a metric the scorer does not report
        fit_weights(logits, ids, only, GRID, 1, _score(labels), "Q@1")
    with pytest.raises(KeyError, match="P1"):  # not a NAME@k metric
        fit_weights(logits, ids, only, GRID, 1, _score(labels), "P1")


def test_reweighted_prior_scores_equal_the_priors_of_those_weights():
    texts = ["libfoo-dev: files for foo", "python3-bar: bindings", "bar-doc: bar", "baz tool"]
    labels = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]], np.float32))
    label_texts = ["libfoo1: foo library", "python3: interpreter", "libbar0: bar library"]
    fused = FusedScorer.fit(
        texts,
        labels,
        label_texts,
        label_text_weight=1.0,
        neighbour_weight=1.0,
        neighbours=2,
        candidates=3,
        char_ngrams=(3, 5),
        min_df=1,
    )
    queries = ["libfoo tools", "python bar bindings", "zzz"]
    parts = fused.prior_scores(queries, 3, workers=1)
    assert parts.neighbours is not None and parts.label_text is not None
    for a, b in [(0.25, 2.0), (4.0, 0.0), (0.0, 0.5)]:
        expected = fused.with_weights(a, b).priors(queries, 3, workers=1)
        got = parts.weighted(a, b)
        assert got.shape == expected.shape and abs(got - expected).max() == 0
    dropped = fused.with_weights(0.0, 0.5)
    assert dropped.neighbours is None and dropped.label_text is fused.label_text
    assert dropped.scale == 1.5


def test_the_vote_power_whose_votes_alone_rank_best_wins_ties_to_the_smaller():
    _, _, informative, noisy, labels = _case()
    votes = {3.0: informative, 1.0: noisy, 2.0: informative}
    power, values = fit_vote_power(votes, 1, _score(labels), "P@1")
    assert power == 2.0
    assert list(values) == [1.0, 2.0, 3.0] and values[2.0] == values[3.0] == 100.0
    assert values[1.0] == 0.0
    with pytest.raises(KeyError, match="PSP@1"):
        fit_vote_power(votes, 1, _score(labels), "PSP@1")
    with pytest.raises(ValueError, match="no vote power"):
        fit_vote_power({}, 1, _score(labels), "P@1")


@pytest.mark.parametrize(
    "raw",
    [
        {"fusion": {"vote_power_grid": []}},
        {"fusion": {"vote_power_grid": [0.0, 1.0]}},
        {"fusion": {"vote_power": 0}},
        {"fusion": {"vote_power": 17.0}},
        {"fusion": {"weight_grid": []}},
        {"fusion": {"weight_grid": [-1.0, 1.0]}},
        {"fusion": {"weight_grid": [0.0, 101.0]}},
        {"fusion": {"fit_weights": "sometimes"}},
        {"fusion": {"temperature_grid": []}},
        {"fusion": {"temperature_grid": [0.0, 1.0]}},
        {"fusion": {"temperature_grid": [1.0, 101.0]}},
        {"fusion": {"head_temperature": 0}},
        {"fusion": {"head_temperature": -1.0}},
    ],
)
def test_bad_fit_settings_are_refused(raw):
    pattern = r"fusion\.(weight_grid|fit_weights|vote_power|temperature_grid|head_temperature)"
    with pytest.raises(ConfigError, match=pattern):
        parse_config(raw)


def test_fit_defaults():
    fusion = parse_config({"fusion": {"weight_grid": [1, 0.5, 1]}}).fusion
    assert fusion.weight_grid == [0.5, 1.0]
    default = parse_config({}).fusion
    assert default.fit_weights is True and default.weight_grid == GRID
    assert default.vote_power is None and default.vote_power_grid == [1.0, 2.0, 3.0]
    assert default.head_temperature == 1.0 and default.temperature_grid == [1.0, 1.5, 2.0]
    # the grid keeps its order (the tie-break order), without repeats
    assert parse_config({"fusion": {"temperature_grid": [2, 1, 2]}}).fusion.temperature_grid == [
        2.0,
        1.0,
    ]


# -- a trained model -----------------------------------------------------------------------------


def _config(split: str = "validation", **fusion) -> TrainConfig:
    fusion = {"fit_min_points": 50, **fusion}  # the slice here: 90 points
    return TrainConfig.model_validate(
        {
            "epochs": 2,
            "batch_size": 50,
            "data": {"max_train_points": 300, "max_test_points": 60, "validation_fraction": 0.3},
            "encoder": {"dim": 32, "tfidf": {"max_features": 4000}},
            "fusion": fusion,
            "eval": {"split": split},
            "device": "cpu",
        }
    )


class Lines(TrainerCallbacks):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(MINI, empty_rows="keep")


@pytest.fixture(scope="module")
def fitted(dataset, tmp_path_factory):
    log = Lines()
    result = train(_config(), dataset, tmp_path_factory.mktemp("fit"), log)
    return result, log.lines


def test_each_epoch_fits_and_the_model_keeps_its_epochs_weights(fitted):
    result, lines = fitted
    assert all(
        set(row["fusion"])
        == {"neighbour_weight", "label_text_weight", "head_temperature", "linear_weight"}
        for row in result.history
    )
    chosen = next(row["fusion"] for row in result.history if row["epoch"] == result.epoch)
    assert result.fusion == {
        **chosen,
        "vote_power": result.fusion["vote_power"],
        "fitted_on": "validation",
    }
    summary = json.loads((result.out_dir / "metrics.json").read_text())
    assert summary["fusion"] == result.fusion
    assert sum("fusion weights fitted on validation" in line for line in lines) == 2
    saved = json.loads((result.model_dir / "fusion.json").read_text())
    assert saved["neighbour_weight"] == chosen["neighbour_weight"]
    assert saved["label_text_weight"] == chosen["label_text_weight"]
    assert saved["head_temperature"] == chosen["head_temperature"] in (1.0, 1.5, 2.0)
    assert (saved["neighbours"] is None) == (chosen["neighbour_weight"] == 0)
    assert saved["linear_weight"] == chosen["linear_weight"]
    assert (saved["linear"] is None) == (chosen["linear_weight"] == 0)
    assert sum("linear prior fitted" in line for line in lines) == 1
    powers = [line for line in lines if line.startswith("neighbour votes: similarity ** ")]
    assert len(powers) == 1 and "chosen on the validation slice" in powers[0]
    power = float(powers[0].split("** ")[1].split(",")[0])
    assert power in (1.0, 2.0, 3.0) and result.fusion["vote_power"] == power
    if saved["neighbours"] is not None:
        assert saved["neighbours"]["power"] == power
    # the validation metrics are those of the fitted pair: at least the head alone's (0, 0)
    for row in result.history:
        assert row["P@1"] >= row["head P@1"]


def test_served_and_evaluated_with_the_fitted_weights(fitted):
    result, _ = fitted
    predictor = Predictor.load(result.model_dir)
    fusion = predictor.model.fusion
    assert fusion is not None
    assert fusion.neighbour_weight == result.fusion["neighbour_weight"]
    assert fusion.label_text_weight == result.fusion["label_text_weight"]
    assert fusion.head_temperature == result.fusion["head_temperature"]
    cli = CliRunner().invoke(
        app, ["eval", "--model", str(result.model_dir), "--data", str(MINI), "--json"]
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == pytest.approx(result.metrics, abs=1e-9)


def test_a_prior_switched_off_is_never_fitted_back_on(dataset, tmp_path):
    result = train(_config(label_text_weight=0.0), dataset, tmp_path)
    assert all(row["fusion"]["label_text_weight"] == 0.0 for row in result.history)
    saved = json.loads((result.model_dir / "fusion.json").read_text())
    assert saved["label_text"] is None and saved["label_text_weight"] == 0.0


def test_no_fit_on_the_test_split_or_when_asked_not_to(dataset, tmp_path):
    log = Lines()
    on_test = train(_config("test", neighbour_weight=0.5), dataset, tmp_path / "test", log)
    assert all("fusion" not in row for row in on_test.history)
    assert on_test.fusion == {
        "neighbour_weight": 0.5,
        "label_text_weight": 1.0,
        "head_temperature": 1.0,
        "linear_weight": 0.0,
        "vote_power": 1.0,
        "fitted_on": None,
    }
    assert any("never on the test split" in line for line in log.lines)
    # the linear prior has no validated fixed weight: without a fit it is not even fitted
    assert any("linear prior off: its weight is only fitted" in line for line in log.lines)
    assert json.loads((on_test.model_dir / "fusion.json").read_text())["linear"] is None
    assert not any(line.startswith("neighbour votes: ") for line in log.lines)
    fixed = train(_config(fit_weights=False, neighbour_weight=0.5), dataset, tmp_path / "fixed")
    assert all("fusion" not in row for row in fixed.history)
    saved = json.loads((fixed.model_dir / "fusion.json").read_text())
    assert (saved["neighbour_weight"], saved["label_text_weight"]) == (0.5, 1.0)
    assert saved["neighbours"]["power"] == 1.0  # nothing fitted: the plain similarity
    log = Lines()
    set_power = train(_config(vote_power=2.5), dataset, tmp_path / "power", log)
    assert not any(line.startswith("neighbour votes: ") for line in log.lines)
    saved = json.loads((set_power.model_dir / "fusion.json").read_text())
    assert saved["neighbours"] is None or saved["neighbours"]["power"] == 2.5
    log = Lines()
    small = train(_config(fit_min_points=91), dataset, tmp_path / "small", log)
    assert all("fusion" not in row for row in small.history)
    assert small.fusion is not None and small.fusion["fitted_on"] is None
    assert any("90 points, under fusion.fit_min_points 91" in line for line in log.lines)
    assert small.fusion["linear_weight"] == 0.0


def test_the_neighbour_prior_never_sees_the_validation_slice(dataset, tmp_path):
    """The validation slice's priors must be those of unseen texts: the neighbour prior's
    train points (and the word idf shared with the encoder) are the train split without it."""
    recipe = Recipe(_config(), dataset, tmp_path, TrainerCallbacks())
    recipe.setup(resume=False)
    train_points = recipe.splits.train.num_points
    assert recipe.splits.validation.num_points == 90 and train_points == 210
    neighbours = recipe.prior_fusion.neighbours
    assert neighbours.train_labels.shape[0] == train_points
    assert neighbours.train_rows.shape[0] == train_points
    assert recipe.eval_prior_scores.shape == (90, dataset.num_labels)
