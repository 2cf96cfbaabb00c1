"""Token ids of a whole split, tokenized once and padded per batch.

A transformer's texts are tokenized in one pass into one ragged array, `TokenizedTexts`: chunks of
`TOKENIZE_CHUNK` texts go to forked worker processes (`elmo_core.parallel.map_chunks`; the fast
tokenizer's own threads hardly scale, as building its Python results holds the GIL), and the ids
come back in chunk order. A batch is then a numpy gather padded to the longest text of the batch
rounded up to `PAD_MULTIPLE` tokens, so batch shapes repeat across steps and no tokenizer runs
inside the training loop.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from elmo_core.parallel import map_chunks

PAD_MULTIPLE = 8
TOKENIZE_CHUNK = 20_000
"""Texts per tokenizing task (fixed: the result does not depend on the worker count)."""


def padded_width(longest: int, multiple: int = PAD_MULTIPLE) -> int:
    """The token width of a batch whose longest text has `longest` tokens: rounded up to
    `multiple` (at least one multiple)."""
    return max(multiple, -(-longest // multiple) * multiple)


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
        width = padded_width(int(lengths.max()) if len(lengths) else 0, multiple)
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

    def __call__(self, texts: Sequence[str], workers: int | None = None) -> TokenizedTexts:
        """The token ids of `texts`, chunks of `TOKENIZE_CHUNK` on `workers` forked processes
        (None: every available core; one chunk runs here)."""
        num_chunks = -(-len(texts) // TOKENIZE_CHUNK)
        parts = map_chunks(_encode_task, (self, texts), num_chunks, workers)
        counts = np.concatenate([c for c, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ids = np.concatenate([i for _, i in parts]) if parts else np.zeros(0, dtype=np.int32)
        return TokenizedTexts(ids=ids, offsets=offsets)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(tokens per text int64, all ids int32) of `texts`, in this process."""
        chunk = list(texts)
        backend = self.backend
        if backend is not None:
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no offsets
            encodings = encode(chunk)
            counts = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(chunk))
            ids = np.fromiter(
                itertools.chain.from_iterable(e.ids for e in encodings),
                dtype=np.int32,
                count=int(counts.sum()),
            )
            return counts, ids
        encoded = self.tokenizer(
            chunk,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_token_type_ids=False,
            return_tensors="np",
        )
        mask = encoded["attention_mask"].astype(bool)
        return mask.sum(axis=1).astype(np.int64), encoded["input_ids"][mask].astype(np.int32)


def _encode_task(
    job: tuple[TextTokenizer, Sequence[str]], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """`TextTokenizer.encode` of chunk `chunk` of the texts (a `map_chunks` task)."""
    tokenizer, texts = job
    start = chunk * TOKENIZE_CHUNK
    return tokenizer.encode(texts[start : start + TOKENIZE_CHUNK])
