"""Token ids of a whole split, tokenized once and padded per batch.

A transformer's texts are tokenized in one pass (the fast tokenizer's batch encoding runs on every
core) into one ragged array, `TokenizedTexts`; a batch is then a numpy gather padded to the
longest text of the batch rounded up to `PAD_MULTIPLE` tokens, so batch shapes repeat across steps
and no tokenizer runs inside the training loop.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PAD_MULTIPLE = 8
TOKENIZE_CHUNK = 100_000


@dataclass(frozen=True)
class TokenizedTexts:
    """Token ids of N texts: text i's are `ids[offsets[i]:offsets[i + 1]]` (special tokens in)."""

    ids: np.ndarray
    """int32, all texts' ids concatenated."""
    offsets: np.ndarray
    """int64, N + 1 entries."""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text (int64)."""
        return np.diff(self.offsets)

    def padded(
        self, rows: np.ndarray, pad_id: int, multiple: int = PAD_MULTIPLE
    ) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask) of `rows`, int64 B x T, T the longest row rounded up to
        `multiple`; padding has id `pad_id` and mask 0."""
        starts = self.offsets[rows]
        lengths = self.offsets[np.asarray(rows) + 1] - starts
        longest = int(lengths.max()) if len(lengths) else 0
        width = max(multiple, -(-longest // multiple) * multiple)
        positions = np.arange(width)
        mask = positions[None, :] < lengths[:, None]
        gather = np.where(mask, starts[:, None] + positions[None, :], 0)
        ids = np.where(mask, self.ids[gather], pad_id).astype(np.int64)
        return ids, mask.astype(np.int64)


class TextTokenizer:
    """Texts -> `TokenizedTexts`, truncated to `max_length` tokens, special tokens added.

    A fast (Rust) tokenizer encodes on every core through its backend, and only the ids come back
    to Python; the backend's truncating copy is made once here (copying it takes ~40 ms, too much
    for every predict call). A slow tokenizer goes through its own call.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        if self.backend is not None:
            self.backend = copy.deepcopy(self.backend)
            self.backend.enable_truncation(self.max_length)
            self.backend.no_padding()

    def __call__(self, texts: Sequence[str]) -> TokenizedTexts:
        """The token ids of `texts`, in chunks of `TOKENIZE_CHUNK`."""
        backend = self.backend
        pieces: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = list(texts[start : start + TOKENIZE_CHUNK])
            if backend is not None:
                encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no offsets
                encodings = encode(chunk)
                counts = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(chunk))
                ids = np.fromiter(
                    itertools.chain.from_iterable(e.ids for e in encodings),
                    dtype=np.int32,
                    count=int(counts.sum()),
                )
            else:
                encoded = self.tokenizer(
                    chunk,
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_token_type_ids=False,
                    return_tensors="np",
                )
                mask = encoded["attention_mask"].astype(bool)
                counts = mask.sum(axis=1).astype(np.int64)
                ids = encoded["input_ids"][mask].astype(np.int32)
            lengths.append(counts)
            pieces.append(ids)
        counts = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
        return TokenizedTexts(ids=ids, offsets=offsets)
