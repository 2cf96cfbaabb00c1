"""The transformer's training forward and backward replayed as CUDA graphs, one pair per batch
shape, with the parameters' gradients written inside the backward graph.

A MiniLM step at batch 128 is launch-bound on an H200: eager PyTorch spends longer issuing the
forward's and backward's few hundred kernels than the GPU spends running them, and Hugging Face's
attention-mask check (`mask.all()`) waits for the GPU at every forward. Captured once per shape,
a step copies its token ids and mask into the forward graph's inputs and replays it, then copies
the head's gradient into the backward graph's input and replays that: two launches instead of
hundreds, no wait. The backward graph writes every trained parameter's gradient into its `.grad`
(buffers made once, before the first capture), so no autograd engine runs at replay: through
`torch.cuda.make_graphed_callables` the gradients came back as a hundred autograd outputs, each
accumulated into `.grad` by a separate engine call, and that bookkeeping (2.4 ms a step on a slow
host, with the Python backward on the engine's thread 2.1 ms more) kept the GPU waiting.

Shapes repeat because batches are padded to a multiple of `GRAPH_TOKEN_MULTIPLE` tokens (at most
`max_length / 16` shapes of full batches); `prepare` captures the shapes an epoch needs before its
batches start (the batch-preparation thread must not touch CUDA during a capture). Any other shape
(the epoch's short last batch) runs eagerly through autograd and writes `.grad` the same way, as
does everything when a capture fails (logged).

All graphs share one memory pool, so their activations take the room of the largest shape, not of
all of them. That is safe here because a step replays its shape's forward and then its backward
before any other graph replays, and the forward's output (the embedding) is consumed by the head
within the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from elmo_core.encoders.tokens import padded_width

GRAPH_TOKEN_MULTIPLE = 16
"""Batches are padded to a multiple of this many tokens when graphs are on."""
WARMUP_STEPS = 3
"""Eager forward + backward passes before each capture (cuBLAS, cuDNN plans, allocator)."""


def padded_widths(
    lengths: np.ndarray, batches: Iterable[np.ndarray], batch_size: int, multiple: int
) -> set[int]:
    """The padded token widths of the full batches among `batches` (rows of `lengths`)."""
    widths: set[int] = set()
    for rows in batches:
        if len(rows) == batch_size:
            widths.add(padded_width(int(lengths[rows].max()), multiple))
    return widths


@dataclass
class _ShapeGraphs:
    """One batch shape's captured forward and backward and their static tensors."""

    forward: torch.cuda.CUDAGraph
    backward: torch.cuda.CUDAGraph
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    embedding: torch.Tensor
    upstream: torch.Tensor


class GraphedEncoderStep:
    """The encoder's training forward (`step(batch)`) and backward (`step.backward(grad)`),
    through a shape's graphs when it has them. After `backward`, every trained parameter's
    `.grad` holds that step's gradient (not a sum over steps), in buffers this object holds: the
    caller steps its optimizer and need not zero the gradients (setting them to None is allowed,
    but the next backward points them at the buffers again)."""

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
        self.graphs: dict[tuple[int, int], _ShapeGraphs] = {}
        self.disabled = False
        self.params: list[nn.Parameter] = []
        self.grads: list[torch.Tensor] = []
        self._pending: _ShapeGraphs | torch.Tensor | None = None

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

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder({"input_ids": ids, "attention_mask": mask})

    def _warm_up(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        """Eager passes on a side stream (as `make_graphed_callables` does); at the first shape,
        the gradient buffers: one per parameter that receives a gradient (a pooler the
        mean-pooled embedding does not use gets none, so its optimizer leaves it alone)."""
        trainable = self._trainable()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                out = self._encode(ids, mask)
                grads = torch.autograd.grad(out, trainable, torch.ones_like(out), allow_unused=True)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self.params:
            return
        self.params = [p for p, g in zip(trainable, grads, strict=True) if g is not None]
        self.grads = [torch.zeros_like(p) for p in self.params]
        self._attach_grads()

    def _attach_grads(self) -> None:
        """Point each parameter's `.grad` at its buffer again (after a `zero_grad(set_to_none=True)`
        elsewhere, say); the buffers are held here, so the graphs never write into freed memory."""
        for p, g in zip(self.params, self.grads, strict=True):
            if p.grad is not g:
                p.grad = g

    def _capture(self, shape: tuple[int, int]) -> _ShapeGraphs:
        ids = torch.ones(shape, dtype=torch.int64, device=self.device)
        mask = torch.ones(shape, dtype=torch.int64, device=self.device)
        mask[:, shape[1] // 2 :] = 0  # padding, as real batches have it
        self._warm_up(ids, mask)
        forward, backward = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(forward, pool=self.pool):
            out = self._encode(ids, mask)
        upstream = torch.zeros_like(out)
        with torch.cuda.graph(backward, pool=self.pool):
            grads = torch.autograd.grad(out, self.params, upstream)
            torch._foreach_copy_(self.grads, list(grads))
        return _ShapeGraphs(forward, backward, ids, mask, out.detach(), upstream)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's embedding of `batch` (through its shape's graph: a tensor the next
        forward overwrites), kept for `backward`."""
        rows, width = batch["input_ids"].shape
        graphs = self.graphs.get((rows, width))
        if graphs is None:
            out = self._encode(batch["input_ids"], batch["attention_mask"])
            self._pending = out
            return out
        graphs.input_ids.copy_(batch["input_ids"], non_blocking=True)
        graphs.attention_mask.copy_(batch["attention_mask"], non_blocking=True)
        graphs.forward.replay()
        self._pending = graphs
        return graphs.embedding

    def backward(self, grad: torch.Tensor) -> None:
        """Write the last forward's parameter gradients for the upstream gradient `grad`."""
        pending, self._pending = self._pending, None
        if pending is None:
            raise RuntimeError("backward without a forward")
        if isinstance(pending, _ShapeGraphs):
            pending.upstream.copy_(grad, non_blocking=True)
            pending.backward.replay()
            self._attach_grads()
            return
        trainable = self._trainable()
        grads = torch.autograd.grad(pending, trainable, grad.to(pending.dtype), allow_unused=True)
        self._attach_grads()
        for p, g in zip(trainable, grads, strict=True):
            if g is None:
                continue
            if p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)
