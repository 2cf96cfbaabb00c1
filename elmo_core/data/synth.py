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
Words are spelled so that a transformer's subword tokenizer cuts them about as often as English
(all-MiniLM-L6-v2 WordPiece: about 1.5 tokens per word of a text, English product titles 1.3),
from fixed lists checked against that vocabulary once (no tokenizer is loaded here):
- the most frequent common words are `COMMON_WORDS`, short words that are one token each, the
  shortest first, in an order made from the seed;
- the other common words are a stem (a consonant-ending word of `COMMON_WORDS`) followed by a
  vowel-ending word piece of `VOWEL_SUFFIXES` (`mad` + `vu`), two tokens;
- topic words are a stem followed by a consonant-ending piece of `CONSONANT_SUFFIXES` (`lewis` +
  `gal`), two tokens; past `TWO_PIECE_TOPIC_WORDS` labels (more than any shape has at scale 0.1)
  the extra topic words take a second consonant-ending piece (three tokens).
Consonants and vowels alternate inside the listed words, so the two consonants where pieces meet
mark the splits: a word is spelled by one choice of pieces only; the words of `COMMON_WORDS` have
no two consonants in a row, the other common words end with a vowel and topic words with a
consonant after such a pair, so the vocabularies never collide.

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


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


COMMON_WORDS = _words(
    """
above abu ace acid adam age aged ages ago aka alan alec alex ali alice alive alone amazon ana
animal anime arab arabic are aren arena aside ate atomic awake aware away axis ba bad bag baker ban
bar bare baron base based bases basic basin basis bat bay be became become bed before began begin
begun below ben beside bet beta bid big bike bin bit bite bo bob bone bones bonus bore bow box
boxes boy bus buses but buy ca cab cabin cafe cage cake came camera can canada canal canon cap cape
capita car care cared carol case cases casey casino cat cave ce cinema cited civic civil co code
codes cohen col cole colin color com come comes comic con cop core cover cox cuba cuban cup cure
cut cute da dad dakota dale dam damage dame dan dare das data date dated dates dave david davis day
de debate debut decade decide define del delay demo den depot der derek des desire device devon di
did divine do doc dog dome don done dos dozen du dug duke edit edited editor elena eleven elite
epic era eric eva evan eve even ever evil exile exit eye eyed eyes fa facade face faced faces faded
fake fame fan far fat fate favor fed felix female fever few fewer fifa figure file filed files
final finale fine fire fired fires fit five fix fixed focus fog for forum fox fun fur future gage
game games gap garage gas gate gates gave gavin gaze gen gene genes geneva genus get give given
gives go gone got gun gut guy ha had han has hat hate hated have haven he helen her here hero hey
hi hide him hip hired his hit ho hole holes home homes honey honor hop hope hoped hopes hot hotel
how hub hug huge hugo huh human humor ice idaho image images iran iron item ivan jacob jake jam
james jan jane janet japan jared jason java jaw jay jet ji jim jin jo job joke jon jones jose joy
june kane karen kate ken kerala kevin key kid kim kit kumar la lab label labor lake lakes lane lap
las laser late later latin latino law lay layer le led leg legal les let level lewis li life liga
like liked likes limit line lined lines lip lisa lit live lived lives liz lo local log logan logic
logo lopez los lose lot love loved lover loves low lower loyal lucas luke ma mac mad made magic
major make maker makes male males mama man manage manila manor map mar marina marine mason mate
mature max may maya mayor me medal men mere merit met metal meter mexico mi mid mike milan mile
miles min mine mines mini minor minute mix mixed mo mobile mode model mom money monica moral more
moses motor move moved moves mud music na name named names nasa nate native nato nature naval nepal
net nevada never new ni nice nicole nina nine no nod non none nor nose not note noted notes notice
nova novel now okay olive oliver one ones open opened opera oral oregon origin oval over owen pa
pace page pages palace pale pan panama panel panic paper parade paris pat pay pen per peru pet pete
peter pile pilot pin pine pipe pit pole police pop pope pot power pub pure put race raced races
radar raf rage raja ram ran rap rapid rare rat rate rated rates raven raw ray re rebel red reduce
refer refuge regime relax relay remix remote remove rev rex rice rico rid ride rider riley rise
rises rival river rob robin robot rod rode roger role roles roman rome ron rope rosa rose row roy
royal rule ruled ruler rules run rural sa sad safe sake sale sales sam same san sara sarah sat
savage save saved saw saxon say se secure semi senate set seven severe si side sides simon sin sir
sit site sites six size sized so solar sole solid solo some son sox sub sugar sum sun super sur
sure susan tag take taken takes tale tales tamil tan tape tate tax taxes taxi te ted tel ten tenor
tenure texas tiger tim time times tin tip tired to today tom tone top topic tore total tower toy
tube tune unit united upon usa usage use used useful user uses utah valid van ve vegas venice vi
vice virus visa visit vital vocal vol volume von vote voted votes voyage wagon wake wales war was
water wave waved waves way we web were weren wet wide wider widow wife win wine wiped wire wise
woke woman women won wore wow wu xi ya yale ye yes yet yu zane zero zone zones
"""
)
"""The most frequent common words, one token each: the first 800 words of the MiniLM (BERT
uncased) vocabulary, roughly by frequency, whose consonants and vowels alternate (2-6 letters;
a few sensitive words left out)."""
CONSONANT_SUFFIXES = _words(
    """
bad bag bah bal ban bar bas bat bay bed bek bel ben ber bered bes bet bey bib bic bid bil bilis bin
bir bis bit bol bolic bon bor bos bot bow box boy bular bus cal cam can cap car cas cased cat cated
ced cek cel cen cer ces cey cic ciful cin cis cit codes col color com con copic cor cos cot cular
culus cup cured cus cut dad dah dak dal dalen dam dan dar das dates dav day ded deh dek del den
dened der des dev dez dic dim din dis dit dog dom don dor dos dot duced duk dun dur dus fahan fan
far fat fed fen fer fin fires fixed for ful fur fus gal gam games gan gar gas gat gated ged gel gen
genic ger ges get gic gical gil gin ginal gis git gol gon gonal gor gos gul gum gun gur gus gut hab
had hak hal ham han har harat has hat havan haven haw hay hed hel hem hen her hered hes hesis het
hetic hey hic hid hil him hin hip hir his hit hof hog hol holes hom hon hop hor hos hosis hot how
hul hum hun hur hus jad jah jak jal jan jar jas jer jet jevic jic jin jit jon jos joy jun jured kal
kam kan kar kas kat ked kel ken ker kes key kic kim kin kir kis kit kon kor kos kot kov kovic kow
kulam kumar kur kus lab lad lag lah lak lal lam lan lar las lat lated lates lav law lay layer led
leg lem len ler les let leton lev ley lez lib lic lices lid lik lim lin lined liner lines lip lis
lit lized lizer log logic loh lok lom lon lor los lot lov lovic low lub lum lun lus lux mac mad mah
maker mal man mar mas mat mates matic max may med mel men mer meral meric mes met meter meyer mic
min mined mir mis mit mon moral mos mot mum mun mur mus music mut nac nad nagar nah nal nam nan nar
nas nat nated nator nay ned nel nem nen ner nes net ney nic nical nik nikov nin nir nis nob non nor
nos nosis not notes nov now num nus nut pac pad pal pan paper par pas ped pel pen per pes pet pic
pid pin pired pis pit pod pol polis pon pop por posed pot power pur puram pus put puted rac rad raf
rag ragan rah raj rak ral ram ran rar ras rat rated rates ratic rator ray raz red rek rel rem ren
rer res ret rew rey ric rid rik ril rim rin rip ris rit ritan rites river rix riz rized rod rogen
rok rol rom ron rop ror ros rosis rot rov roved row roy rud rug rum run rup rus rut sal sam san sar
sas sat say sed sef sel sen ser ses set sey sic sil sin sir sis sit sitor sol som son sonic sop sor
sos sov sul sum sun sur sus tad tag taken tal tam tan tar tas tat tated tec ted tek tel tem ten ter
tered terol tes tet tic tical ticus tin tip tis tiv tized tok tom ton tones tonic top tor tos tosis
tov tow tower toy tub tum tur tures tus vac vah val van var vas vat ved vel ven venor ver vered ves
vet vey vez vic vid vik vil vin vir virus vis von vor vos vot vus wad wal wan war was wat water way
wed wen wer wes wig wil win wives woman won xed xes xin xon yad yah yal yam yan yar yas yat yed yeh
yen yer yes yev yin yon zak zal zam zan zar zed zek zel zen zer zes zic zin zog zon zos zow
"""
)
"""The word pieces of that vocabulary (`##gal`) that end topic words: 3-5 letters, consonant
first and last, consonants and vowels alternating."""
VOWEL_SUFFIXES = _words(
    """
ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo fu ga ge gi go gu ha he hi ho hu ja je ji
jo ju ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa
se si so su ta te ti to tu va ve vi vo vu wa we wi wo wu xa xi ya ye yi yo yu za ze zi zo zu
"""
)
"""The consonant-vowel word pieces of that vocabulary (`##vu`) that end the rarer common words."""
STEMS = tuple(word for word in COMMON_WORDS if word[-1] not in "aeiou")
"""The first piece of the other words: the words of COMMON_WORDS that end with a consonant."""
TWO_PIECE_TOPIC_WORDS = len(STEMS) * len(CONSONANT_SUFFIXES)
"""Topic words of two pieces (two tokens); the topic words past these have three."""

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
    num_topic_words = max(shape.labels, MIN_TOPIC_VOCABULARY)
    background = _background_words(rng)
    topic_words = _topic_words(num_topic_words, rng)
    width = max(background.shape[1], topic_words.shape[1]) + 1
    vocabulary = np.zeros((BACKGROUND_WORDS + num_topic_words, width), dtype=np.uint8)
    vocabulary[:BACKGROUND_WORDS, : background.shape[1]] = background
    vocabulary[BACKGROUND_WORDS:, : topic_words.shape[1]] = topic_words
    del background, topic_words
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


def _piece_table(words: tuple[str, ...]) -> np.ndarray:
    """(n, longest) uint8: the words' bytes, zero-padded."""
    table = np.array([word.encode() for word in words])  # dtype S<longest>, zero-padded
    return table.view(np.uint8).reshape(len(words), table.itemsize)


_COMMON, _STEMS, _CONSONANT_SUFFIXES, _VOWEL_SUFFIXES = map(
    _piece_table, (COMMON_WORDS, STEMS, CONSONANT_SUFFIXES, VOWEL_SUFFIXES)
)
_COMPOUND_BLOCK = 1 << 20
"""Words spelled at a time by `_compounds` (bounds its temporary arrays)."""


def _background_words(rng: np.random.Generator) -> np.ndarray:
    """The common words by frequency rank: COMMON_WORDS, shortest first (seeded order within a
    length), then stems with a vowel suffix in a seeded order."""
    order = rng.permutation(len(COMMON_WORDS))
    order = order[np.argsort(np.count_nonzero(_COMMON[order], axis=1), kind="stable")]
    common = _COMMON[order[:BACKGROUND_WORDS]]
    rest = _compounds(rng, BACKGROUND_WORDS - len(common), [_VOWEL_SUFFIXES])
    words = np.zeros((BACKGROUND_WORDS, max(common.shape[1], rest.shape[1])), dtype=np.uint8)
    words[: len(common), : common.shape[1]] = common
    words[len(common) :, : rest.shape[1]] = rest
    return words


def _topic_words(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct words, a stem and a consonant suffix (then, past TWO_PIECE_TOPIC_WORDS, a
    stem and two consonant suffixes), in a seeded order."""
    two = min(count, TWO_PIECE_TOPIC_WORDS)
    short = _compounds(rng, two, [_CONSONANT_SUFFIXES])
    if count == two:
        return short
    long = _compounds(rng, count - two, [_CONSONANT_SUFFIXES, _CONSONANT_SUFFIXES])
    words = np.zeros((count, long.shape[1]), dtype=np.uint8)
    words[:two, : short.shape[1]] = short
    words[two:] = long
    return words


def _compounds(rng: np.random.Generator, count: int, suffixes: list[np.ndarray]) -> np.ndarray:
    """`count` distinct words, (count, width) zero-padded: a stem followed by one piece of each
    table of `suffixes`, the combinations taken in a seeded order (a bijection of their codes)."""
    tables = [_STEMS, *suffixes]
    space = math.prod(len(table) for table in tables)
    if count > space:
        raise ConfigError(f"cannot spell {count:,} distinct words from {space:,} combinations")
    stride = int(rng.integers(1, space))
    while math.gcd(stride, space) != 1:
        stride += 1
    offset = int(rng.integers(0, space))
    width = sum(table.shape[1] for table in tables)
    words = np.zeros((count, width), dtype=np.uint8)
    columns = np.arange(width)
    for first in range(0, count, _COMPOUND_BLOCK):
        codes = np.arange(first, min(count, first + _COMPOUND_BLOCK), dtype=np.int64)
        codes = (codes * stride + offset) % space  # a bijection of [0, space)
        pieces = []
        for table in reversed(tables):  # the last piece is the least significant digit
            codes, digit = np.divmod(codes, len(table))
            pieces.append(table[digit])
        joined = np.concatenate(pieces[::-1], axis=1)  # zero-padded pieces side by side
        letters = joined != 0
        block = words[first : first + len(joined)]
        block[columns < np.count_nonzero(letters, axis=1)[:, None]] = joined[letters]
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
