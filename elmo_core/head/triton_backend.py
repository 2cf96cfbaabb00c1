"""``HeadBackend`` over the Triton kernels of ``triton_kernels.py`` (CUDA, bf16/e4m3 storage).

Cases the kernels do not cover go to the reference: fp32 storage (plain SGD) and batches larger
than ``limits.MAX_BATCH``. Importing this module imports triton; the head imports it only
for a CUDA device.
"""

from __future__ import annotations

import dataclasses

import torch

from elmo_core.head import triton_kernels as tk
from elmo_core.head.limits import MAX_BATCH
from elmo_core.head.reference import ReferenceBackend


class TritonBackend:
    """Fused Triton kernels for the step, the logits and the top-k."""

    name = "triton"

    def __init__(self, config: tk.KernelConfig = tk.DEFAULT_CONFIG) -> None:
        self.config = config
        self.reference = ReferenceBackend()

    def _covers(self, weight: torch.Tensor, batch: int) -> bool:
        return weight.dtype != torch.float32 and batch <= MAX_BATCH

    def default_chunk(self, num_labels: int, dim: int, batch: int, weight: torch.Tensor) -> int:
        """The kernels' tuned chunk (a ``chunk x B`` bf16 buffer), capped by the free memory."""
        if not self._covers(weight, batch):
            return self.reference.default_chunk(num_labels, dim, batch, weight)
        free, _ = torch.cuda.mem_get_info(weight.device)
        return max(tk.BLOCK_L, min(self.config.chunk, num_labels, free // (8 * batch)))

    def logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``E W^T`` (B x n fp32) for the rows given."""
        if weight.dtype == torch.float32:
            return self.reference.logits(weight, embedding)
        return tk.logits(weight, embedding, config=self.config)

    def step_logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The step's logits: `logits` (the same rule)."""
        return self.logits(weight, embedding)

    def step(
        self,
        weight: torch.Tensor,
        embedding: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        lr: float,
        *,
        seed: int,
        weight_decay: float,
        compensation: torch.Tensor | None,
        chunk_size: int,
        gradient_floor: float = 0.0,
        below_floor_rate: float = 0.0,
        screen: torch.Tensor | None = None,
        screen_window: int = 0,
    ) -> torch.Tensor:
        """One fused training step in place on ``weight`` (and ``compensation``); returns ``dE``.
        The kernels update every label: a ``gradient_floor`` above 0 is refused (``XMCHead``
        refuses it at construction)."""
        if gradient_floor:
            raise ValueError("the Triton backend updates every label: gradient_floor must be 0")
        if not self._covers(weight, embedding.shape[0]):
            return self.reference.step(
                weight,
                embedding,
                rows,
                cols,
                lr,
                seed=seed,
                weight_decay=weight_decay,
                compensation=compensation,
                chunk_size=chunk_size,
            )
        config = dataclasses.replace(self.config, chunk=chunk_size)
        return tk.head_step(
            weight,
            embedding,
            rows,
            cols,
            lr,
            seed=seed,
            weight_decay=weight_decay,
            compensation=compensation,
            config=config,
        )

    def topk(
        self, weight: torch.Tensor, embedding: torch.Tensor, k: int, *, chunk_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k logits and storage row ids, ``chunk_size`` rows of scores at a time."""
        if weight.dtype == torch.float32:
            return self.reference.topk(weight, embedding, k, chunk_size=chunk_size)
        max_bytes = 4 * embedding.shape[0] * chunk_size
        return tk.topk(weight, embedding, k, max_scores_bytes=max_bytes, config=self.config)
