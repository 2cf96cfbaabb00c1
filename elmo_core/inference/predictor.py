"""`Predictor`: a loaded model that turns texts into top-k labels with scores in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.config import TrainConfig
from elmo_core.encoders import TransformerEncoder
from elmo_core.model.artifact import LoadedModel, load_model
from elmo_core.model.scoring import cpu_float32_head_bytes, rank_topk, text_priors

BATCH_SIZE = 256


class Predictor:
    """Batch prediction through the head's chunked top-k (service and CLI share it)."""

    def __init__(self, model: LoadedModel, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.config: TrainConfig = model.config
        self.num_labels: int = model.head.num_labels
        self.label_texts: list[str] | None = model.label_texts
        if device.type == "cpu":
            # Scoring in fp32 from exact copies: CPUs without BF16/FP8 units convert or emulate
            # them on every call (a BF16 MiniLM: 16 texts in 2.96 s vs 0.58 s in fp32, 2 cores).
            model.head.keep_float32_copy(cpu_float32_head_bytes())
            if isinstance(model.encoder, TransformerEncoder):
                model.encoder.float()

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> Predictor:
        """Load a model artifact directory (JSON + safetensors only, no pickle)."""
        dev = torch.device(device)
        return cls(load_model(model_dir, dev), dev)

    def rank(
        self, texts: list[str] | None, features: sp.csr_matrix | None, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores in [0, 1] and label ids (N x k, best first) of texts or feature rows; fused
        with the model's text priors when it has them and texts are given."""
        encoder = self.model.encoder
        prepared = encoder.featurize(texts, features)
        num_rows = len(texts) if texts is not None else features.shape[0]  # type: ignore[union-attr]
        fusion = self.model.fusion if texts is not None else None
        priors = text_priors(encoder, fusion, texts, prepared, self.num_labels, self.device)
        return rank_topk(
            encoder, self.model.head, prepared, num_rows, k, BATCH_SIZE, self.device, fusion, priors
        )

    def predict(
        self,
        texts: list[str],
        k: int = 10,
        threshold: float | None = None,
        exclude: list[list[int]] | None = None,
    ) -> list[list[dict]]:
        """Per text, the k best labels: `{"label_id", "label", "score"}`, best first.

        `score` lies in [0, 1]: the fused score (see `elmo_core.fusion`), or the head's sigmoid
        probability for a model without text priors.

        `threshold` drops labels whose score is below it. `k` is capped at the label count.
        `exclude[i]` lists label ids never to return for text i (e.g. the item a text describes,
        which the label-text prior ranks high when the item is itself a label).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
        excluded = self._check_exclude(exclude, len(texts))
        if not texts:
            return []
        extra = max((len(ids) for ids in excluded), default=0)
        scores, ids = self.rank(list(texts), None, k + extra)
        results = []
        for row_ids, row_scores, skip in zip(ids, scores, excluded, strict=True):
            row: list[dict] = []
            for label_id, score in zip(row_ids.tolist(), row_scores.tolist(), strict=True):
                if label_id in skip or label_id < 0 or len(row) == k:
                    continue
                if threshold is not None and score < threshold:
                    continue
                label = None if self.label_texts is None else self.label_texts[label_id]
                row.append({"label_id": int(label_id), "label": label, "score": float(score)})
            results.append(row)
        return results

    def _check_exclude(self, exclude: list[list[int]] | None, num_texts: int) -> list[set[int]]:
        """`exclude` as one set per text; ValueError naming a wrong length or a bad label id."""
        if exclude is None:
            return [set() for _ in range(num_texts)]
        if len(exclude) != num_texts:
            raise ValueError(
                f"exclude has {len(exclude)} lists for {num_texts} texts; give one per text"
            )
        for i, ids in enumerate(exclude):
            for label_id in ids:
                if isinstance(label_id, bool) or not isinstance(label_id, int):
                    raise ValueError(f"exclude[{i}]: label id {label_id!r} is not an integer")
                if not 0 <= label_id < self.num_labels:
                    raise ValueError(
                        f"exclude[{i}]: label id {label_id} is out of range "
                        f"(the model has {self.num_labels} labels)"
                    )
        return [set(ids) for ids in exclude]
