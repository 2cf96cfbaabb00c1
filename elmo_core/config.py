"""`TrainConfig`: the one typed config of a run, shared by the CLI, the REST API and the worker.

A job's config is this object serialised (`model_dump(mode="json")`), nothing else. Every section
forbids unknown keys, so a typo is an error, not a silently ignored option. The defaults were chosen
on a validation slice carved from debian-deps-mini's train split (never on a test split) and are
meant to generalise: see docs/training.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from elmo_core.data.vocabulary import DatasetFormat, EmptyRowsPolicy
from elmo_core.errors import ConfigError
from elmo_core.precision import KahanDtype, Precision, valid_below_floor_rate

MAX_K = 10_000
"""The largest k a metric may be computed at."""
SPARSE_ENCODER_LR = 1e-3
TRANSFORMER_ENCODER_LR = 1e-4


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


DEFAULT_WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
"""The fusion weights fitted on the validation slice are chosen from these (per prior)."""
DEFAULT_VOTE_POWERS = (1.0, 2.0, 3.0)
"""The neighbour vote powers chosen from on the validation slice (docs/training.md)."""
DEFAULT_HEAD_TEMPERATURES = (1.0, 1.5, 2.0)
"""The head temperatures fitted with the fusion weights on the validation slice."""
DEFAULT_LINEAR_WEIGHT_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
"""The linear prior's fitted weight c is chosen from these (docs/training.md, "Linear prior")."""
DEFAULT_LINEAR_MAX_COST = 6_000_000_000
"""`FusionConfig.linear_max_cost`: labels x train n-gram entries (docs/training.md, "Linear
prior")."""
DEFAULT_PATIENCE = 3
"""Epochs without a better validation score after which training stops (docs/training.md)."""

GPU_BATCH_SIZE = 128
"""`TrainConfig.batch_size` None on a GPU."""
CPU_BATCH_SIZE = 256
"""`TrainConfig.batch_size` None on the CPU: the low-precision head's rounding pass over all its
weights costs the same at any batch, so a batch larger than the GPU's spreads it over more
points; with that pass fused (docs/cpu_head.md, numba kernels) 256 trains better than 512 on the
validation slices of debian-deps (best P@1 77.76 against 76.58) and wordnet-taxonomy (128:
63.82 against 63.23; docs/benchmarks.md)."""


def default_batch_size(device_type: str) -> int:
    """The batch size a config without one trains with on a device of this type."""
    return CPU_BATCH_SIZE if device_type == "cpu" else GPU_BATCH_SIZE


DEFAULT_BELOW_FLOOR_RATE = 1 / 16
"""`HeadConfig.below_floor_rate` (docs/training.md, "Gradient floor")."""
CPU_GRADIENT_FLOOR = 0.01
"""`HeadConfig.gradient_floor` None on the CPU (docs/training.md, "Gradient floor")."""
DEFAULT_SCREEN_WINDOW = 4
"""`HeadConfig.screen_window` (docs/training.md, "Gradient floor": the screened forward)."""


GPU_LOG_EVERY = 50
"""`TrainConfig.log_every` None on a GPU."""
CPU_LOG_EVERY = 200
"""`TrainConfig.log_every` None on the CPU: the logged loss is a full forward over every label
(the training step itself scores only the labels its screen keeps), about 0.3 s per logging step
with two members at wordnet-taxonomy's shape on a 2-core VM, 6% of a run when logged every 50
steps; every 200 steps is about every 15 s there."""


def default_log_every(device_type: str) -> int:
    """The loss-logging interval (steps) a config without one uses on a device of this type."""
    return CPU_LOG_EVERY if device_type == "cpu" else GPU_LOG_EVERY


def default_members(device_type: str, encoder: EncoderConfig) -> int:
    """The members a config without a count trains on a device of this type with this encoder."""
    return CPU_MEMBERS if device_type == "cpu" and encoder.takes_members else 1


def default_gradient_floor(device_type: str) -> float:
    """The head's gradient floor a config without one trains with on a device of this type: the
    GPU kernels update every label, the CPU skips the labels a batch barely moves."""
    return CPU_GRADIENT_FLOOR if device_type == "cpu" else 0.0


MAX_MEMBERS = 16
"""The most members (`TrainConfig.members`) a run trains."""
CPU_MEMBERS = 2
"""`TrainConfig.members` None on the CPU, for an encoder that takes members (docs/training.md,
"Members")."""


BIG = 10**12
"""The bound of every count in a config (points, features, steps): any real run is far below it,
and a larger integer is refused here rather than overflowing a planner or an allocator later."""
ChunkSize = Annotated[int, Field(ge=1, le=2**31, strict=True)]


class DataConfig(_Section):
    """Which points of the dataset a run uses."""

    format: DatasetFormat = "auto"
    empty_rows: EmptyRowsPolicy = "keep"
    max_train_points: int | None = Field(
        None,
        ge=1,
        le=BIG,
        strict=True,
        description="Use only the first N train points (points are in random order).",
    )
    max_test_points: int | None = Field(
        None, ge=1, le=BIG, strict=True, description="Use only the first N test points."
    )
    validation_fraction: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Hold out the last fraction of train as the validation slice that selects "
        "the model (never the test split); 0: no slice, the last epoch is the model.",
    )
    max_validation_points: int = Field(
        10_000,
        ge=1,
        le=BIG,
        strict=True,
        description="At most this many points in the validation slice.",
    )
    label_texts_as_points: bool = Field(
        False,
        description="Also train on each label's text as a point whose only label is itself "
        "(text encoders, datasets with label texts): helps labels rare or absent in train.",
    )


class TfidfConfig(_Section):
    """The TF-IDF featurizer of the sparse encoder (fitted on the train texts only)."""

    mode: Literal["vocab", "hash"] = "vocab"
    bigrams: bool = True
    min_df: int = Field(2, ge=1, le=BIG, strict=True)
    max_features: int = Field(500_000, ge=1, le=10**8, strict=True)
    num_buckets: int = Field(2**20, ge=1, le=2**28, strict=True)


class EncoderConfig(_Section):
    """The encoder: `tfidf`, `features` (a dataset's sparse features), `minilm` or `hf:PATH`."""

    name: str = "tfidf"
    dim: int = Field(
        512, ge=1, le=65_536, strict=True, description="Embedding width of the sparse encoder."
    )
    tfidf: TfidfConfig = TfidfConfig()
    mlp_layers: int = Field(0, ge=0, le=64, strict=True)
    activation: Literal["relu", "gelu", "tanh"] = "gelu"
    init_std: float = Field(0.05, gt=0.0)
    dropout: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="Embedding dropout before the head (0.3: chosen on validation slices, "
        "docs/training.md).",
    )
    bias_feature: float = Field(
        1.0,
        ge=0.0,
        description="Append this constant to each embedding: a per-label bias (0: off).",
    )
    max_length: int = Field(
        128, ge=8, le=8192, strict=True, description="Transformer: max tokens per text."
    )
    float8: bool = Field(
        False, description="Transformer on Hopper: torchao float8 training of the linear layers."
    )
    compile: bool = Field(
        False,
        description="Transformer on CUDA: train through torch.compile (dynamic shapes); pays a "
        "one-off compilation at the first steps (docs/benchmarks.md has both measured).",
    )
    cuda_graphs: bool = Field(
        True,
        description="Transformer on CUDA (without compile or float8): replay the training "
        "forward and backward as CUDA graphs, one per padded batch shape.",
    )

    @field_validator("name")
    @classmethod
    def _known_encoder(cls, value: str) -> str:
        if value in ("tfidf", "features", "minilm") or (value.startswith("hf:") and len(value) > 3):
            return value
        raise ValueError(f"encoder must be tfidf, features, minilm or hf:PATH, got {value!r}")

    @property
    def is_sparse(self) -> bool:
        """True for the sparse encoders (tfidf, features)."""
        return self.name in ("tfidf", "features")

    @property
    def takes_members(self) -> bool:
        """True when `TrainConfig.members` > 1 can train this encoder: sparse, no MLP layers."""
        return self.is_sparse and not self.mlp_layers


class HeadConfig(_Section):
    """Options of the low-precision head (`elmo_core.head.XMCHead`)."""

    chunk_size: ChunkSize | Literal["auto"] | None = None
    head_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Kahan on this fraction of labels.")
    kahan_dtype: KahanDtype = "bf16"
    weight_decay: float = Field(0.0, ge=0.0)
    init_std: float = Field(0.0, ge=0.0)
    init_from_label_texts: float = Field(
        0.0,
        ge=0.0,
        description="Start each label's row as this factor x the encoder's embedding of its text "
        "(datasets with label texts; 0: off).",
    )
    gradient_floor: float | None = Field(
        None,
        ge=0.0,
        le=0.5,
        description="A step skips the labels whose |sigmoid(z) - y| is below this for every "
        "point of the batch (CPU only; 0: every label; None: the device's default).",
    )
    below_floor_rate: float = Field(
        DEFAULT_BELOW_FLOOR_RATE,
        ge=0.0,
        le=1.0,
        description="Each label under the gradient floor is still updated with this probability, "
        "its gradient scaled by the inverse (unbiased; 0 or a power of two 2^-k).",
    )
    screen_window: int = Field(
        DEFAULT_SCREEN_WINDOW,
        ge=0,
        le=255,
        strict=True,
        description="With a gradient floor, a step scores only the labels over the floor in the "
        "last N steps, the batch's positives and the below-floor draw (0: every label).",
    )

    @field_validator("below_floor_rate")
    @classmethod
    def _power_of_two(cls, rate: float) -> float:
        if not valid_below_floor_rate(rate):
            raise ValueError("must be 0 or a power of two 2^-k, 0 <= k <= 24")
        return rate


class ScheduleConfig(_Section):
    """Learning rates and their warm-up + decay, separately for the encoder and the head."""

    encoder_lr: float | None = Field(
        None,
        gt=0.0,
        description="None: 1e-3 for the sparse encoders, 1e-4 for transformers "
        "(TrainConfig.encoder_lr).",
    )
    head_lr: float = Field(1.0, gt=0.0)
    encoder_weight_decay: float = Field(0.0, ge=0.0)
    warmup_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)


class FusionConfig(_Section):
    """Score fusion (`elmo_core.fusion`): the head's probability plus three text priors fitted on
    the train split, `(p + a * neighbour vote + b * label-text cosine + c * linear score) /
    (1 + a + b + c)`.

    Needs raw texts; a weight of 0 turns its prior off (all 0: the head alone). p is the sigmoid
    of the head's logit divided by `head_temperature`. With `fit_weights` (default) a, b and c of
    the priors that are on, and the temperature, are fitted on the validation slice.
    """

    label_text_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="b: character n-gram cosine to each label's text."
    )
    neighbour_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="a: labels of the nearest train points (TF-IDF)."
    )
    linear_weight: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="c: a one-vs-rest linear SVM per label on the character n-gram TF-IDF, "
        "scored sigmoid(2 x margin); fitted only when it is cheap (`linear_max_cost`).",
    )
    linear_c: float = Field(
        0.5, gt=0.0, le=100.0, description="The linear prior's SVM C (smaller: more L2)."
    )
    linear_min_points: int = Field(
        5,
        ge=1,
        le=BIG,
        strict=True,
        description="SVMs only for labels with at least this many train points (rarer labels "
        "are left to the neighbour and label-text priors; they would cost an SVM each for a "
        "model of one or two points).",
    )
    linear_max_cost: int = Field(
        DEFAULT_LINEAR_MAX_COST,
        ge=0,
        le=10**15,
        strict=True,
        description="Fit the linear prior only when the labels it fits (`linear_min_points`) "
        "x the train texts' stored n-gram entries is at most this (its fit grows with both; the "
        "default admits a few thousand labels over short texts, about a minute on 2 cores). It "
        "is fitted only where the fusion weights are fitted on a validation slice "
        "(`fit_weights`, `fit_min_points`): its weight has no validated fixed value.",
    )
    neighbours: int = Field(
        50, ge=1, le=1000, strict=True, description="Train points in the neighbour vote."
    )
    vote_power: float | None = Field(
        None,
        gt=0.0,
        le=16.0,
        description="Each neighbour votes with its similarity raised to this power (1: the "
        "similarity itself; larger: the closest neighbours count more). None: chosen from "
        "`vote_power_grid` on the validation slice by the votes' own ranking whenever the "
        "weights are fitted (`fit_weights`), else 1.",
    )
    vote_power_grid: list[float] = Field(
        default_factory=lambda: list(DEFAULT_VOTE_POWERS),
        description="The vote powers `vote_power` None chooses from.",
    )
    candidates: int = Field(
        100, ge=1, le=10_000, strict=True, description="Head and label-text candidates per text."
    )
    char_ngrams: tuple[int, int] = Field((3, 5), description="Character n-gram lengths (lo, hi).")
    min_df: int = Field(2, ge=1, description="Keep character n-grams in >= this many texts.")
    fit_weights: bool = Field(
        True,
        description="Fit a, b and the head temperature on the validation slice at each epoch's "
        "evaluation (every temperature of `temperature_grid` with every (a, b, c) of "
        "`weight_grid`, the best by eval.select_metric; ties: the earlier temperature, then the "
        "smaller a + b + c, then the smaller a, then b); the weights above then only say which "
        "priors exist (0: off, never "
        "fitted back on). Without a validation slice, or with eval.split test, the weights and "
        "`head_temperature` above are used as they are.",
    )
    fit_min_points: int = Field(
        1000,
        ge=1,
        le=BIG,
        strict=True,
        description="Fit the weights only on a validation slice of at least this many points "
        "(on fewer, the choice among the grid's pairs is mostly noise: the weights above are "
        "used).",
    )
    weight_grid: list[float] = Field(
        default_factory=lambda: list(DEFAULT_WEIGHT_GRID),
        description="The values the fitted weights a and b are chosen from.",
    )
    linear_weight_grid: list[float] = Field(
        default_factory=lambda: list(DEFAULT_LINEAR_WEIGHT_GRID),
        description="The values the fitted weight c is chosen from (up to 16: where the linear "
        "prior is fitted it may rank far better than a head of a few epochs).",
    )
    head_temperature: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="T in p = sigmoid(logit / T) when the weights are not fitted (larger: the "
        "head's probabilities are softer, so the priors reorder more of its candidates).",
    )
    temperature_grid: list[float] = Field(
        default_factory=lambda: list(DEFAULT_HEAD_TEMPERATURES),
        description="The head temperatures fitted with a, b and c (every temperature x every "
        "(a, b, c); ties: the earlier temperature in this order, then the weights order of "
        "`fit_weights`).",
    )
    fit_beside_training: bool | None = Field(
        None,
        description="Fit the priors in a forked process while the first epoch trains (they are "
        "first needed at its evaluation), instead of before the first step. None: on a CUDA "
        "device, whose training leaves the host's cores idle; on the CPU the training uses "
        "them, so the priors are fitted first.",
    )

    @field_validator("weight_grid", "linear_weight_grid")
    @classmethod
    def _weight_grid(cls, value: list[float], info: ValidationInfo) -> list[float]:
        if not value or len(value) > 64 or any(not 0.0 <= w <= 100.0 for w in value):
            raise ValueError(
                f"{info.field_name} must hold 1 to 64 weights in [0, 100], got {list(value)}"
            )
        return sorted(set(value))

    @field_validator("temperature_grid")
    @classmethod
    def _temperature_grid(cls, value: list[float]) -> list[float]:
        if not value or len(value) > 16 or any(not 0.0 < t <= 100.0 for t in value):
            raise ValueError(
                f"temperature_grid must hold 1 to 16 temperatures in (0, 100], got {list(value)}"
            )
        return list(dict.fromkeys(float(t) for t in value))

    @field_validator("vote_power_grid")
    @classmethod
    def _vote_power_grid(cls, value: list[float]) -> list[float]:
        if not value or len(value) > 16 or any(not 0.0 < p <= 16.0 for p in value):
            raise ValueError(
                f"vote_power_grid must hold 1 to 16 powers in (0, 16], got {list(value)}"
            )
        return sorted({float(p) for p in value})

    @field_validator("char_ngrams")
    @classmethod
    def _ngram_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        lo, hi = value
        if not 1 <= lo <= hi <= 7:
            raise ValueError(f"char_ngrams must satisfy 1 <= lo <= hi <= 7, got {list(value)}")
        return value

    @property
    def active(self) -> bool:
        """True when at least one prior has a positive weight."""
        return self.label_text_weight > 0 or self.neighbour_weight > 0 or self.linear_weight > 0


class EvalConfig(_Section):
    """Evaluation after each epoch, the metric that selects the model, and the final report.

    `split="validation"` (default): each epoch is evaluated on the validation slice of train and
    the best epoch by `select_metric` is the model saved; the test split is evaluated once, on
    that model. `split="test"`: each epoch is evaluated on the test split for monitoring only, and
    the last epoch is the model (nothing is ever selected on the test split). `patience` stops
    a validation run early once the selected epoch lies that many epochs back.
    """

    every_epoch: bool = True
    split: Literal["validation", "test"] = "validation"
    ks: list[Annotated[int, Field(strict=True)]] = Field(default_factory=lambda: [1, 3, 5])
    batch_size: int = Field(512, ge=1, le=2**20, strict=True)
    propensity_a: float = 0.55
    propensity_b: float = 1.5
    select_metric: str = "P@1"
    patience: int | None = Field(
        DEFAULT_PATIENCE,
        ge=0,
        le=100_000,
        strict=True,
        description="Early stopping: stop once this many evaluated epochs in a row have not "
        "reached the best select_metric so far on the validation slice (the selected epoch; "
        "ties count as reached, as in selection). None or 0: train every epoch. Only with "
        "split validation: nothing is selected, so nothing stops, on the test split.",
    )

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= k <= MAX_K for k in value):
            raise ValueError(
                f"ks must be a non-empty list of integers in [1, {MAX_K}], got {value}"
            )
        return sorted(set(value))


class CheckpointConfig(_Section):
    """When to write a resumable checkpoint: at the end of each epoch at least
    `min_interval_s` after the last one, every `every_steps` steps, and when a job is cancelled."""

    every_steps: int = Field(
        0, ge=0, le=BIG, strict=True, description="Also every N steps (0: only each epoch)."
    )
    min_interval_s: float = Field(
        60.0,
        ge=0.0,
        le=BIG,
        description="Skip an epoch's checkpoint while the last one (or the start of training) "
        "is less than this many seconds old: a crash then costs at most this long plus an "
        "epoch, and short epochs do not rewrite the whole optimiser state each time (wordnet-"
        "taxonomy on the CPU: 661 MB, about 2 s of a core, every 7-second epoch). 0: every epoch.",
    )
    keep: bool = Field(
        False,
        description="Keep the last checkpoint once the run has finished; by default it is deleted "
        "then, so `model/` is the only copy of the weights on disk.",
    )


class TrainConfig(_Section):
    """The complete, serialisable configuration of one training run."""

    data: DataConfig = DataConfig()
    encoder: EncoderConfig = EncoderConfig()
    precision: Precision = "fp8"
    head: HeadConfig = HeadConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    fusion: FusionConfig = FusionConfig()
    epochs: int = Field(10, ge=1, le=100_000, strict=True)
    batch_size: int | None = Field(
        None,
        ge=1,
        le=2**20,
        strict=True,
        description="Points per step. None: 128 on a GPU, 256 on the CPU, where each step of a "
        "bf16/fp8 head rounds every weight once whatever the batch (docs/cpu_head.md).",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, strict=True)
    members: int | None = Field(
        None,
        ge=1,
        le=MAX_MEMBERS,
        strict=True,
        description="Independently trained copies of a sparse encoder and its head, their "
        "logits averaged; saved and served as one model this many times as wide. None: 2 on "
        "the CPU for a sparse encoder without mlp_layers, else 1 (docs/training.md, Members).",
    )
    member_lanes: int | None = Field(
        None,
        ge=1,
        le=MAX_MEMBERS,
        strict=True,
        description="CPU only: members stepped at once, each lane a thread on threads / lanes "
        "cores. None: one lane per member while each keeps a core; 1: one member after another "
        "on every core (docs/training.md, Members).",
    )
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int | None = Field(
        None,
        ge=1,
        le=BIG,
        strict=True,
        description="Compute and report the loss every N steps (None: 50 on a GPU, 200 on the "
        "CPU, where it costs a full forward over every label).",
    )
    threads: int | None = Field(
        None, ge=1, le=4096, strict=True, description="CPU threads for torch (None: default)."
    )

    @model_validator(mode="after")
    def _members_need_a_plain_sparse_encoder(self) -> TrainConfig:
        if self.members and self.members > 1 and not self.encoder.takes_members:
            raise ValueError(
                f"members {self.members} needs a sparse encoder (tfidf, features) without "
                f"mlp_layers; this config has encoder {self.encoder.name!r} with "
                f"{self.encoder.mlp_layers} mlp_layers"
            )
        return self

    @property
    def encoder_lr(self) -> float:
        """The encoder's peak learning rate: `schedule.encoder_lr`, or the encoder kind's default
        (a pretrained transformer is fine-tuned 10x more gently than a sparse table is trained)."""
        if self.schedule.encoder_lr is not None:
            return self.schedule.encoder_lr
        return SPARSE_ENCODER_LR if self.encoder.is_sparse else TRANSFORMER_ENCODER_LR

    def for_device(self, device_type: str) -> tuple[TrainConfig, list[str]]:
        """This config with the device defaults it leaves open filled in for a run on a device
        of `device_type` (`batch_size`, `members`, `head.gradient_floor`, `log_every`), and one
        log line per default taken."""
        update: dict = {}
        notes: list[str] = []
        if self.batch_size is None:
            update["batch_size"] = default_batch_size(device_type)
            notes.append(f"batch size {update['batch_size']} ({device_type} default)")
        if self.members is None:
            update["members"] = default_members(device_type, self.encoder)
            notes.append(f"members {update['members']} ({device_type} default)")
        if self.head.gradient_floor is None:
            floor = default_gradient_floor(device_type)
            update["head"] = self.head.model_copy(update={"gradient_floor": floor})
            notes.append(f"head gradient floor {floor:g} ({device_type} default)")
        if self.log_every is None:
            update["log_every"] = default_log_every(device_type)
            notes.append(f"loss logged every {update['log_every']} steps ({device_type} default)")
        return self.model_copy(update=update), notes

    def to_json(self) -> str:
        """The config as indented JSON (the skeleton `elmo train --print-config` prints)."""
        return json.dumps(self.model_dump(mode="json"), indent=2)


def load_config(path: str | Path) -> TrainConfig:
    """Read a TrainConfig from a JSON file; ConfigError names the file and the bad fields."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: object, source: str = "config") -> TrainConfig:
    """Validate a dict into a TrainConfig; ConfigError lists each bad field with its location."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
