"""Synthetic XMC datasets in the LF raw-text layout, for throughput and memory sizing.

A shape carries a public dataset's sizes (points, labels, labels per point, words per text);
`synthesize` writes `trn_X.txt`, `trn_X_Y.txt`, `tst_X.txt`, `tst_X_Y.txt` and `Y.txt` with the
same statistics, so loading, featurizing and training can be timed at that scale. The numbers a
model reaches on it say nothing about the real dataset.

The generative story, chosen to be learnable and to look like XMC data:
- label frequencies follow a shifted power law (`LABEL_ZIPF_EXPONENT`, `LABEL_ZIPF_OFFSET`) over a
  seeded random order of the label ids, so a few labels are frequent and most are rare;
- a point has `1 + Poisson(labels_per_point - 1)` distinct labels;
- each label has `TOPIC_WORDS` topic words; its text (`Y.txt`) is its topic words followed by
  common words, about `label_words` words in all, like a product title;
- a point's text has a log-normal number of words around `words_per_text`: each word is, with
  probability `TOPIC_SHARE`, a topic word of one of the point's labels (at least one is), else a
  common word drawn from a Zipf law over `BACKGROUND_WORDS` words.
Words are pronounceable syllable strings (`kamo`, `tesilun`), made from the seed; topic words end
with a consonant and common words with a vowel, so the two vocabularies never collide.

Points are generated in chunks of `CHUNK_POINTS`, each from a numpy generator seeded with (seed,
split, chunk index), in parallel with `map_chunks` a few chunks per worker at a time, and written
in chunk order: the files depend on (shape, seed) only, never on the worker count, and memory stays
bounded whatever the size.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from elmo_core.errors import ConfigError
from elmo_core.parallel import map_chunks, worker_count

CHUNK_POINTS = 8192
"""Points per generated chunk (fixed, so the output does not depend on the worker count)."""
CHUNK_LABELS = 65536
"""Label texts per generated chunk of `Y.txt`."""
CHUNKS_PER_WORKER = 2
"""Chunks each worker generates per round before the parent appends them (bounds what waits
in part files on disk; the parent holds one chunk at a time)."""
LABEL_ZIPF_EXPONENT = 0.8
"""The label of popularity rank r (0-based) is drawn with probability ~ (r + offset)^-exponent."""
LABEL_ZIPF_OFFSET = 10.0
BACKGROUND_WORDS = 20000
"""Size of the common-word vocabulary (the background of every text)."""
BACKGROUND_ZIPF_EXPONENT = 1.1
BACKGROUND_ZIPF_OFFSET = 2.7
TOPIC_WORDS = 3
"""Topic words per label."""
TOPIC_SHARE = 0.3
"""Probability that a word of a point's text is a topic word of one of its labels."""
TEXT_LENGTH_SIGMA = 0.5
"""Sigma of the log-normal factor around the mean text length."""
MIN_TOPIC_VOCABULARY = 1000
"""Distinct topic words at least, so that a small label set still has distinct topics."""
MAX_LABELS = 100_000_000
"""Label ids are written as two groups of 4 digits (see `_render_label_ids`)."""
MAX_REDRAWS = 16
"""Rounds of redrawing a point's duplicate labels; any duplicate left after them is dropped."""
LABEL_VALUE = b":1.00000"
"""What follows each label id in `*_X_Y.txt`, as in the repository's files."""
PARTS_DIR = ".synth-parts"
"""Folder inside the output where workers leave generated chunks (removed at the end)."""

_ONSETS = b"bdfghjklmnprstvwz"
_VOWELS = b"aeiou"
_CODAS = b"nrslkx"
_SYLLABLES = len(_ONSETS) * len(_VOWELS)
_STREAM_MODEL, _STREAM_LABELS, _STREAM_TRAIN, _STREAM_TEST = 0, 1, 2, 3


@dataclass(frozen=True)
class SynthShape:
    """Sizes of a synthetic dataset: points per split, labels, and mean lengths."""

    train_points: int
    test_points: int
    labels: int
    labels_per_point: float
    words_per_text: float
    label_words: float

    def scaled(self, scale: float) -> SynthShape:
        """This shape with points and labels multiplied by `scale` (ratios kept, at least 1)."""
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"scale must be a positive number, got {scale}")

        def times(count: int) -> int:
            return max(1, round(count * scale)) if count > 0 else 0

        return replace(
            self,
            train_points=times(self.train_points),
            test_points=times(self.test_points),
            labels=times(self.labels),
        )

    def check(self) -> None:
        """Raise ConfigError if a size is out of range."""
        if self.train_points < 1:
            raise ConfigError(f"points must be at least 1, got {self.train_points}")
        if self.test_points < 0:
            raise ConfigError(f"test points must be at least 0, got {self.test_points}")
        if not 1 <= self.labels <= MAX_LABELS:
            raise ConfigError(f"labels must be in [1, {MAX_LABELS:,}], got {self.labels}")
        for name, value in (
            ("labels per point", self.labels_per_point),
            ("words per text", self.words_per_text),
            ("label words", self.label_words),
        ):
            if not (math.isfinite(value) and value >= 1):
                raise ConfigError(f"{name} must be at least 1, got {value}")


SHAPES: dict[str, SynthShape] = {
    # Amazon-670K (Extreme Classification Repository): product titles -> related products.
    "amazon-670k": SynthShape(490_449, 153_025, 670_091, 5.45, 30, 6),
    # Amazon-3M: product titles -> products bought together; many labels per point.
    "amazon-3m": SynthShape(1_717_899, 742_507, 2_812_281, 36.04, 30, 6),
    # Wiki-500K: Wikipedia articles -> categories; texts stand for the first 128 words of one.
    "wiki-500k": SynthShape(1_779_881, 769_421, 501_070, 4.75, 128, 3),
}
"""The named shapes: the public datasets' split sizes, label counts and mean lengths."""
CUSTOM_DEFAULTS = {"words_per_text": 30.0, "label_words": 4.0}
"""Mean lengths of the `custom` shape when not given."""


def resolve_shape(
    name: str,
    scale: float = 1.0,
    *,
    points: int | None = None,
    test_points: int | None = None,
    labels: int | None = None,
    labels_per_point: float | None = None,
    words_per_text: float | None = None,
    label_words: float | None = None,
) -> SynthShape:
    """The shape `name` ("custom" or a key of SHAPES) with the given numbers overriding its own,
    scaled by `scale`. "custom" needs points, test_points, labels and labels_per_point."""
    given: dict[str, Any] = {
        "train_points": points,
        "test_points": test_points,
        "labels": labels,
        "labels_per_point": labels_per_point,
        "words_per_text": words_per_text,
        "label_words": label_words,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if name == "custom":
        options = {"train_points": "--points", "test_points": "--test-points"}
        options |= {"labels": "--labels", "labels_per_point": "--labels-per-point"}
        missing = [option for key, option in options.items() if key not in given]
        if missing:
            raise ConfigError(f"the custom shape needs {', '.join(missing)}")
        shape = SynthShape(**(CUSTOM_DEFAULTS | given))
    elif name in SHAPES:
        shape = replace(SHAPES[name], **given)
    else:
        raise ConfigError(f"unknown shape {name!r}: expected custom or one of {sorted(SHAPES)}")
    shape = shape.scaled(scale)
    shape.check()
    return shape


@dataclass
class SynthSummary:
    """What `synthesize` wrote."""

    out: Path
    shape: SynthShape
    train_positives: int
    test_positives: int
    files: list[str]
    bytes_written: int
    seconds: float

    @property
    def avg_labels_per_point(self) -> float:
        """Mean labels per point over both splits."""
        points = self.shape.train_points + self.shape.test_points
        return (self.train_positives + self.test_positives) / points


LF_FILES = (
    "trn_X.txt",
    "trn_X_Y.txt",
    "tst_X.txt",
    "tst_X_Y.txt",
    "Y.txt",
    "trn_X_Xf.txt",
    "tst_X_Xf.txt",
    "trn_filter_labels.txt",
    "tst_filter_labels.txt",
)
"""Files of the LF layout the loader reads; `overwrite` removes those this run does not write."""


def synthesize(
    out: str | Path,
    shape: SynthShape,
    seed: int = 0,
    *,
    workers: int | None = None,
    overwrite: bool = False,
) -> SynthSummary:
    """Write a synthetic dataset of `shape` in the LF raw-text layout into directory `out`.

    The files depend on (shape, seed) only. `workers`: processes generating chunks (None: every
    core). An existing non-empty `out` is refused unless `overwrite`; then the LF files this run
    does not write (features, filters, a test split when test_points is 0) are removed so that
    the directory loads as what was generated.
    """
    started = time.perf_counter()
    shape.check()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty (use --force to overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    files = ["Y.txt", "trn_X.txt", "trn_X_Y.txt"]
    if shape.test_points:
        files += ["tst_X.txt", "tst_X_Y.txt"]
    for name in LF_FILES:
        if name not in files:
            (out / name).unlink(missing_ok=True)
    spill = out / PARTS_DIR
    spill.mkdir(exist_ok=True)
    model = _build_model(shape, seed, spill)
    try:
        with (out / "Y.txt").open("wb") as handle:
            job = replace(model, stream=_STREAM_LABELS)
            _write_chunks(
                _label_texts_chunk, job, -(-shape.labels // CHUNK_LABELS), [handle], workers
            )
        positives = [
            _write_split(out, prefix, replace(model, stream=stream, points=points), workers)
            for prefix, stream, points in (
                ("trn", _STREAM_TRAIN, shape.train_points),
                ("tst", _STREAM_TEST, shape.test_points),
            )
            if points
        ]
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return SynthSummary(
        out=out,
        shape=shape,
        train_positives=positives[0],
        test_positives=positives[1] if len(positives) > 1 else 0,
        files=files,
        bytes_written=sum((out / name).stat().st_size for name in files),
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Model:
    """What every chunk needs: sizes, the label popularity order, topics and the vocabulary."""

    shape: SynthShape
    seed: int
    label_of_rank: np.ndarray  # (L,) int32: the label id of each popularity rank
    topics: np.ndarray  # (L, TOPIC_WORDS) int32 vocabulary ids
    vocabulary: np.ndarray  # (V, width) uint8 word bytes, zero-padded, last column always 0
    word_lengths: np.ndarray  # (V,) int64
    spill: Path  # where workers leave the chunks they generated, for the parent to append
    stream: int = _STREAM_TRAIN
    points: int = 0


def _build_model(shape: SynthShape, seed: int, spill: Path) -> _Model:
    rng = np.random.default_rng([seed, _STREAM_MODEL])
    syllables = rng.permutation([[onset, vowel] for onset in _ONSETS for vowel in _VOWELS]).astype(
        np.uint8
    )
    num_topic_words = max(shape.labels, MIN_TOPIC_VOCABULARY)
    background = _background_words(syllables)
    topic_words = _topic_words(syllables, num_topic_words, rng)
    width = max(background.shape[1], topic_words.shape[1]) + 1
    vocabulary = np.zeros((BACKGROUND_WORDS + num_topic_words, width), dtype=np.uint8)
    vocabulary[:BACKGROUND_WORDS, : background.shape[1]] = background
    vocabulary[BACKGROUND_WORDS:, : topic_words.shape[1]] = topic_words
    topics = rng.integers(0, num_topic_words, (shape.labels, TOPIC_WORDS), dtype=np.int32)
    return _Model(
        shape=shape,
        seed=seed,
        label_of_rank=rng.permutation(shape.labels).astype(np.int32),
        topics=topics + BACKGROUND_WORDS,
        vocabulary=vocabulary,
        word_lengths=np.count_nonzero(vocabulary, axis=1),
        spill=spill,
    )


def _spell(codes: np.ndarray, count: int, syllables: np.ndarray) -> np.ndarray:
    """(n, 2 * count) bytes: `count` syllables, the base-85 digits of `codes`."""
    digits = (codes[:, None] // _SYLLABLES ** np.arange(count)) % _SYLLABLES
    return syllables[digits].reshape(len(codes), 2 * count)


def _background_words(syllables: np.ndarray) -> np.ndarray:
    """The common words by frequency rank: the 85 one-syllable words, then two, then three."""
    words = np.zeros((BACKGROUND_WORDS, 6), dtype=np.uint8)
    first = 0
    for count in (1, 2, 3):
        stop = min(BACKGROUND_WORDS, first + _SYLLABLES**count)
        words[first:stop, : 2 * count] = _spell(np.arange(stop - first), count, syllables)
        first = stop
    return words


def _topic_words(syllables: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct words of syllables plus a final consonant, in a seeded order."""
    num_syllables = 3
    while _SYLLABLES**num_syllables * len(_CODAS) < count:
        num_syllables += 1
    space = _SYLLABLES**num_syllables * len(_CODAS)
    stride = int(rng.integers(1, space))
    while math.gcd(stride, space) != 1:
        stride += 1
    offset = int(rng.integers(0, space))
    codes = (np.arange(count, dtype=np.int64) * stride + offset) % space  # a bijection
    words = np.empty((count, 2 * num_syllables + 1), dtype=np.uint8)
    words[:, :-1] = _spell(codes // len(_CODAS), num_syllables, syllables)
    words[:, -1] = np.frombuffer(_CODAS, dtype=np.uint8)[codes % len(_CODAS)]
    return words


def _power_law_ranks(
    rng: np.random.Generator, size: int, count: int, exponent: float, offset: float
) -> np.ndarray:
    """`size` ranks in [0, count) with P(r) ~ (r + offset)^-exponent (continuous inverse CDF)."""
    power = 1.0 - exponent
    low = offset**power
    high = (count + offset) ** power
    ranks = (low + rng.random(size) * (high - low)) ** (1.0 / power) - offset
    return np.minimum(ranks.astype(np.int64), count - 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    return _power_law_ranks(
        rng, size, BACKGROUND_WORDS, BACKGROUND_ZIPF_EXPONENT, BACKGROUND_ZIPF_OFFSET
    )


def _render_words(model: _Model, words: np.ndarray, line_ends: np.ndarray) -> bytes:
    """The words joined by spaces, with a newline after the positions in `line_ends`."""
    table = np.take(model.vocabulary, words, axis=0)
    seps = np.full(len(words), ord(" "), dtype=np.uint8)
    seps[line_ends] = ord("\n")
    table[np.arange(len(words)), model.word_lengths[words]] = seps
    return table[table != 0].tobytes()


def _digit_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numbers 0..9999 as 4 bytes each (a uint32 per number): right-aligned and zero-padded
    (0 is empty), right-aligned with "0" kept for 0, and with leading zero digits."""
    numbers = np.arange(10000)
    padded = (ord("0") + numbers[:, None] // 10 ** np.arange(3, -1, -1) % 10).astype(np.uint8)
    significant = numbers[:, None] >= 10 ** np.arange(3, -1, -1)
    stripped = np.where(significant, padded, 0).astype(np.uint8)
    with_zero = stripped.copy()
    with_zero[0, 3] = ord("0")
    return (
        stripped.view(np.uint32).ravel(),
        with_zero.view(np.uint32).ravel(),
        padded.view(np.uint32).ravel(),
    )


_HIGH_DIGITS, _LOW_DIGITS, _LOW_DIGITS_PADDED = _digit_tables()
_LABEL_SUFFIX = np.frombuffer(LABEL_VALUE, dtype=np.uint32)
_SPACE, _NEWLINE = (np.frombuffer(c + bytes(3), dtype=np.uint32)[0] for c in (b" ", b"\n"))


def _render_label_ids(ids: np.ndarray, line_ends: np.ndarray) -> bytes:
    """`id:1.00000` entries joined by spaces, with a newline after the positions in `line_ends`.

    Ids below 10^8 are written as two 4-digit groups looked up in tables; the zero bytes that
    pad the groups are dropped at the end.
    """
    high, low = np.divmod(ids, 10000)
    words = np.empty((len(ids), 3 + len(_LABEL_SUFFIX)), dtype=np.uint32)
    words[:, 0] = _HIGH_DIGITS[high]
    words[:, 1] = np.where(high > 0, _LOW_DIGITS_PADDED[low], _LOW_DIGITS[low])
    words[:, 2:-1] = _LABEL_SUFFIX
    words[:, -1] = _SPACE
    words[line_ends, -1] = _NEWLINE
    table = words.view(np.uint8)
    return table[table != 0].tobytes()


def _line_ends(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - 1


def _label_texts_chunk(model: _Model, index: int) -> tuple[list[bytes], int]:
    """Lines of Y.txt for labels [index * CHUNK_LABELS, ...): topic words, then common words."""
    first = index * CHUNK_LABELS
    count = min(CHUNK_LABELS, model.shape.labels - first)
    rng = np.random.default_rng([model.seed, _STREAM_LABELS, index])
    lengths = 1 + rng.poisson(model.shape.label_words - 1, count)
    owner = np.repeat(np.arange(count), lengths)
    position = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    is_topic = position < TOPIC_WORDS
    words = np.empty(len(owner), dtype=np.int64)
    words[is_topic] = model.topics[first + owner[is_topic], position[is_topic]]
    words[~is_topic] = _background(rng, int(np.count_nonzero(~is_topic)))
    return [_render_words(model, words, _line_ends(lengths))], 0


def _point_labels(model: _Model, rng: np.random.Generator, count: int) -> np.ndarray:
    """Sorted keys row * L + label of `count` points' distinct labels."""
    num_labels = model.shape.labels
    per_point = 1 + rng.poisson(model.shape.labels_per_point - 1, count)
    per_point = np.minimum(per_point, num_labels)
    rows = np.repeat(np.arange(count, dtype=np.int64), per_point)

    def draw(size: int) -> np.ndarray:
        ranks = _power_law_ranks(rng, size, num_labels, LABEL_ZIPF_EXPONENT, LABEL_ZIPF_OFFSET)
        return model.label_of_rank[ranks].astype(np.int64)

    keys = rows * num_labels + draw(len(rows))
    keys.sort()
    for _ in range(MAX_REDRAWS):
        duplicates = np.flatnonzero(keys[1:] == keys[:-1]) + 1
        if not duplicates.size:
            break
        keys[duplicates] = rows[duplicates] * num_labels + draw(duplicates.size)
        keys.sort(kind="stable")  # nearly sorted: timsort is fast
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep]


def _points_chunk(model: _Model, index: int) -> tuple[list[bytes], int]:
    """([label lines, text lines], positives) of the chunk's points."""
    first = index * CHUNK_POINTS
    count = min(CHUNK_POINTS, model.points - first)
    rng = np.random.default_rng([model.seed, model.stream, index])
    keys = _point_labels(model, rng, count)
    rows, labels = np.divmod(keys, model.shape.labels)
    label_counts = np.bincount(rows, minlength=count)
    label_starts = np.cumsum(label_counts) - label_counts

    sigma = TEXT_LENGTH_SIGMA
    factor = rng.lognormal(-(sigma**2) / 2, sigma, count)
    lengths = np.maximum(1, np.rint(model.shape.words_per_text * factor)).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    owner = np.repeat(np.arange(count), lengths)
    is_topic = rng.random(len(owner)) < TOPIC_SHARE
    is_topic[starts + (rng.random(count) * lengths).astype(np.int64)] = True
    topic_owner = owner[is_topic]
    pick = (rng.random(len(topic_owner)) * label_counts[topic_owner]).astype(np.int64)
    topic_labels = labels[label_starts[topic_owner] + pick]
    words = np.empty(len(owner), dtype=np.int64)
    words[is_topic] = model.topics[topic_labels, rng.integers(0, TOPIC_WORDS, len(topic_labels))]
    words[~is_topic] = _background(rng, len(owner) - len(topic_owner))
    label_lines = _render_label_ids(labels, _line_ends(label_counts))
    return [label_lines, _render_words(model, words, _line_ends(lengths))], len(labels)


def _write_split(out: Path, prefix: str, job: _Model, workers: int | None) -> int:
    """Write `{prefix}_X_Y.txt` (header first) and `{prefix}_X.txt`; return the positives."""
    with (
        (out / f"{prefix}_X_Y.txt").open("wb") as labels_file,
        (out / f"{prefix}_X.txt").open("wb") as texts_file,
    ):
        labels_file.write(f"{job.points} {job.shape.labels}\n".encode())
        num_chunks = -(-job.points // CHUNK_POINTS)
        return _write_chunks(_points_chunk, job, num_chunks, [labels_file, texts_file], workers)


Task = Callable[[_Model, int], tuple[list[bytes], int]]
"""Generates chunk i: one piece of bytes per output file, and a count to add up."""


def _write_chunks(
    task: Task, job: _Model, num_chunks: int, handles: list[BinaryIO], workers: int | None
) -> int:
    """Run `task` on every chunk, a few chunks per worker at a time, and append the pieces to
    `handles` in chunk order; return the sum of the counts.

    Workers leave their pieces in a file under `job.spill` (faster than sending them back
    through a pipe); the parent appends them and deletes the file.
    """
    wave = CHUNKS_PER_WORKER * worker_count(workers)
    total = 0
    for first in range(0, num_chunks, wave):
        count = min(wave, num_chunks - first)
        for path, sizes, number in map_chunks(_spill_chunk, (task, job, first), count, workers):
            data = memoryview(path.read_bytes())
            path.unlink()
            offset = 0
            for handle, size in zip(handles, sizes, strict=True):
                handle.write(data[offset : offset + size])
                offset += size
            total += number
    return total


def _spill_chunk(shared: tuple[Task, _Model, int], index: int) -> tuple[Path, list[int], int]:
    """Run the task on chunk `first + index`; write its pieces to one file in the spill folder."""
    task, job, first = shared
    chunk = first + index
    pieces, number = task(job, chunk)
    path = job.spill / f"{job.stream}-{chunk}"
    with path.open("wb") as handle:
        for piece in pieces:
            handle.write(piece)
    return path, [len(piece) for piece in pieces], number
