"""`plan_host_memory`: the predicted peak host RAM of a run, part by part, from dataset statistics.

At scale the host, not the GPU, is what a run outgrows first: raw texts, the featurized splits, the
text priors' indexes and the evaluation's rankings all live in RAM. The parts (bytes), from the
statistics `elmo data inspect` prints (`dataset_stats`):
- framework: the Python process with torch, CUDA and the libraries loaded, a fixed 2 GiB;
- texts: train + test + label texts as Python strings (characters + 80 bytes per string);
- labels: the label matrices (CSR: 8 bytes per positive, twice: loaded and the split copies);
- inputs: the featurized splits: TF-IDF rows (about 2.5 features per word, 8 bytes each) or
  token ids (1.4 tokens per word + 2, at most `max_length`, 4 bytes each);
- priors: the neighbour prior's train rows and their transpose (16 bytes per feature), its label
  matrix, and the label-text prior's character n-gram matrix and transpose (3 n-gram lengths per
  label-text character, 16 bytes each);
- evaluation: the largest split's priors (`candidates` + `neighbours` entries per row, 8 bytes)
  and the head's ranking (`candidates` logits and ids per row, 12 bytes);
- model copies: the head (weights and Kahan rows) and the encoder (weights and two optimizer
  moments) on the host, once per member (`TrainConfig.members`, resolved for the device the run
  trains on), plus with several members the merged model written at each save.
These are estimates; docs/benchmarks.md compares them with measured peak RSS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from elmo_core.config import TrainConfig
from elmo_core.precision import KAHAN_BYTES, STORAGE_BYTES, is_low_precision
from elmo_core.training.planner import transformer_shape

FRAMEWORK_HOST_BYTES = 2 << 30
STRING_OVERHEAD = 80
TFIDF_FEATURES_PER_WORD = 2.5
TOKENS_PER_WORD = 1.4


@dataclass
class HostMemoryPlan:
    """Predicted host bytes per part of a run."""

    framework: int
    texts: int
    labels: int
    inputs: int
    priors: int
    evaluation: int
    model_copies: int

    @property
    def total_bytes(self) -> int:
        """Sum of all parts."""
        return sum(asdict(self).values())

    def fits(self, host_bytes: int) -> bool:
        """True if the predicted peak is at most `host_bytes`."""
        return self.total_bytes <= host_bytes

    def to_dict(self) -> dict:
        """The parts and the total as a JSON-able dict."""
        return {**asdict(self), "total_bytes": self.total_bytes}


def plan_host_memory(
    config: TrainConfig, stats: dict[str, Any], device_type: str = "cpu"
) -> HostMemoryPlan:
    """Predict the peak host RAM of training `config` on a dataset with `stats`
    (`elmo_core.data.dataset_stats`), on a device of `device_type` (which resolves a config
    without `members`)."""
    train, test = stats["train"], stats.get("test") or {}
    num_labels = int(stats["num_labels"])
    label_chars = float((stats.get("labels") or {}).get("avg_text_chars") or 0.0)
    points = int(train["points"]) + int(test.get("points", 0))
    words = float(train.get("avg_text_words") or 0.0)
    chars = float(train.get("avg_text_chars") or 0.0)
    has_texts = "avg_text_chars" in train
    texts = 0
    if has_texts:
        texts = int(points * (chars + STRING_OVERHEAD))
    if label_chars:
        texts += int(num_labels * (label_chars + STRING_OVERHEAD))
    positives = int(train["positives"]) + int(test.get("positives", 0))
    labels = 16 * positives
    enc = config.encoder
    if enc.is_sparse:
        per_point = (
            words * TFIDF_FEATURES_PER_WORD
            if enc.name == "tfidf"
            else float(train.get("avg_features_per_point") or 0.0)
        )
        inputs = int(points * per_point * 8)
    else:
        tokens = min(enc.max_length, words * TOKENS_PER_WORD + 2)
        inputs = int(points * tokens * 4)
    fusion = config.fusion
    priors = 0
    if has_texts and fusion.neighbour_weight > 0:
        priors += int(train["points"] * words * TFIDF_FEATURES_PER_WORD * 16)
        priors += 8 * int(train["positives"])
    if has_texts and fusion.label_text_weight > 0 and label_chars:
        priors += int(num_labels * label_chars * 3 * 16)
    largest = max(int(test.get("points", 0)), min(int(train["points"]), 10_000))
    evaluation = largest * fusion.candidates * 12
    if has_texts and fusion.active:
        evaluation += largest * (fusion.candidates + fusion.neighbours) * 8
    shape = None if enc.is_sparse else transformer_shape(enc.name)
    dim = enc.dim if shape is None else shape["hidden"]
    head = num_labels * (dim + 1) * STORAGE_BYTES[config.precision]
    if is_low_precision(config.precision):
        kahan_rows = round(config.head.head_ratio * num_labels)
        head += kahan_rows * (dim + 1) * KAHAN_BYTES[config.head.kahan_dtype]
    if shape is not None:
        encoder_params = shape["params"]
    else:
        features = enc.tfidf.max_features if enc.name == "tfidf" else 0
        encoder_params = features * enc.dim
    encoder_bytes = encoder_params * 4 * 3  # weights and two optimizer moments, saved as fp32
    members = config.for_device(device_type)[0].members
    assert members is not None
    copies = members * (head + encoder_bytes)
    if members > 1:  # the merged model, built at each save
        copies += members * (head + encoder_params * 4)
    return HostMemoryPlan(
        framework=FRAMEWORK_HOST_BYTES,
        texts=texts,
        labels=labels,
        inputs=inputs,
        priors=priors,
        evaluation=int(evaluation),
        model_copies=copies,
    )
