"""The transformer's training forward and backward replayed as CUDA graphs, one per batch shape.

A MiniLM step at batch 128 is launch-bound on an H200: eager PyTorch spends longer issuing the
forward's and backward's few hundred kernels than the GPU spends running them, and Hugging Face's
attention-mask check (`mask.all()`) waits for the GPU at every forward. Captured once per shape
with `torch.cuda.make_graphed_callables`, a step copies its token ids and mask into the graph's
inputs and replays two graphs (forward, backward): a few launches instead of hundreds, no wait.

Shapes repeat because batches are padded to a multiple of `GRAPH_TOKEN_MULTIPLE` tokens (at most
`max_length / 16` shapes of full batches); `prepare` captures the shapes an epoch needs before its
batches start (the batch-preparation thread must not touch CUDA during a capture). Any other shape
(the epoch's short last batch) runs eagerly, as does everything when a capture fails (logged).

All graphs share one memory pool, so their activations take the room of the largest shape, not of
all of them. That is safe here because steps run one at a time and every graph output (the
embedding, the parameters' gradients) is consumed within its step (by the head, by the
optimizer), before another graph replays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from elmo_core.encoders.tokens import padded_width

GRAPH_TOKEN_MULTIPLE = 16
"""Batches are padded to a multiple of this many tokens when graphs are on."""
WARMUP_STEPS = 3
"""Eager forward + backward passes before each capture (cuBLAS and allocator warm-up)."""


class _TokensToEmbedding(nn.Module):
    """`encoder({input_ids, attention_mask})` as a module of two tensor arguments (what
    `make_graphed_callables` captures); one per shape, since capturing replaces its forward."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder({"input_ids": input_ids, "attention_mask": attention_mask})


def padded_widths(
    lengths: np.ndarray, batches: Iterable[np.ndarray], batch_size: int, multiple: int
) -> set[int]:
    """The padded token widths of the full batches among `batches` (rows of `lengths`)."""
    widths: set[int] = set()
    for rows in batches:
        if len(rows) == batch_size:
            widths.add(padded_width(int(lengths[rows].max()), multiple))
    return widths


class GraphedTrainForward:
    """Callable like the encoder on a token batch; replays a captured graph for shapes it has."""

    def __init__(
        self,
        encoder: nn.Module,
        batch_size: int,
        device: torch.device,
        log: Callable[[str], None],
    ) -> None:
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.device = device
        self.log = log
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple[int, int], nn.Module] = {}
        self.disabled = False

    def prepare(self, widths: Iterable[int]) -> None:
        """Capture the (batch size x width) shapes not captured yet; on a failed capture, log
        why and train eagerly from then on."""
        for width in sorted(set(widths)):
            shape = (self.batch_size, int(width))
            if self.disabled or shape in self.graphs:
                continue
            try:
                self.graphs[shape] = self._capture(shape)
            except RuntimeError as error:
                self.disabled = True
                self.graphs.clear()
                torch.cuda.synchronize(self.device)
                self.log(f"CUDA graph capture failed ({error}): the encoder trains eagerly")
                return

    def _capture(self, shape: tuple[int, int]) -> nn.Module:
        ids = torch.ones(shape, dtype=torch.int64, device=self.device)
        mask = torch.ones(shape, dtype=torch.int64, device=self.device)
        mask[:, shape[1] // 2 :] = 0  # padding, as real batches have it
        module = _TokensToEmbedding(self.encoder)
        if not self.graphs:
            # One eager backward on the current stream first: the parameters' gradient
            # accumulators are then made on the stream the graphs replay on (else on the side
            # stream of the capture's warm-up, and every replay pays a cross-stream wait).
            module(ids, mask).float().sum().backward()
            self.encoder.zero_grad(set_to_none=True)
        graphed = torch.cuda.make_graphed_callables(
            module,
            (ids, mask),
            num_warmup_iters=WARMUP_STEPS,
            allow_unused_input=True,  # e.g. a pooler the mean-pooled embedding does not use
            pool=self.pool,
        )
        assert isinstance(graphed, nn.Module)
        return graphed

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's embedding of `batch`, through its shape's graph when there is one."""
        graphed = self.graphs.get(tuple(batch["input_ids"].shape))  # type: ignore[arg-type]
        if graphed is None:
            return self.encoder(batch)
        return graphed(batch["input_ids"], batch["attention_mask"])
