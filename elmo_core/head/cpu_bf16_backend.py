"""The head's training step on CPUs with native bf16 matrix units (AVX512-BF16, AMX).

``ReferenceBackend`` computes "bf16 operands, fp32 accumulation" as fp32 products of the
bf16-rounded operands, so a CPU pays fp32 GEMM rates for low-precision weights. On a CPU with
bf16 instructions, oneDNN's bf16 GEMM (what ``torch.matmul`` of bf16 tensors calls there) takes
the same bf16 operands and accumulates in fp32, 4x to 6x faster; its one difference is that it
rounds each product's *result* to bf16 before returning it. ``CpuBf16Backend.step`` uses it for the
three products of a low-precision step (``Z = E W^T``, ``dE += G W``, ``G^T E``), so:

- ``Z`` is rounded to bf16 before the sigmoid (relative error <= 2^-9 of each logit);
- each chunk's ``dE`` contribution is rounded to bf16 before the fp32 sum over chunks;
- the update ``U = -lr (G^T E + wd W)`` has its ``G^T E`` rounded to bf16 (relative 2^-9), far
  below the spacing of the bf16/e4m3 grid that ``SR(W + U)`` rounds to, so the rounding stays
  unbiased and the random bits are the reference's (``rounding.random_bits(i, j, seed)``).

Everything else (G's rounding, Kahan rows, the stochastic rounding) is ``ReferenceBackend``'s.
fp32 storage, ``logits`` and ``topk`` (prediction) keep the reference's fp32 products. The head
picks this backend on such CPUs for bf16/fp8 storage (``head.select_backend``); the tests compare it
with an fp64 computation and with the reference's weights.
"""

from __future__ import annotations

import torch

from elmo_core.head.reference import ReferenceBackend


def native_bf16_cpu() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bf16_weights(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (bf16 or e4m3) as bf16, exactly (every e4m3 value is a bf16 value); e4m3 goes
    through a table of its 256 bytes gathered by ``index_select``."""
    if weight.dtype == torch.bfloat16:
        return weight
    table = torch.arange(256, dtype=torch.uint8).view(weight.dtype).to(torch.bfloat16)
    index = weight.contiguous().view(torch.uint8).reshape(-1).to(torch.int32)
    return table.index_select(0, index).reshape(weight.shape)


class CpuBf16Backend(ReferenceBackend):
    """``ReferenceBackend`` with the low-precision step's products in oneDNN bf16 GEMMs (its
    step, with these operand and product hooks; fp32 storage keeps the reference's)."""

    name = "cpu-bf16"

    def embedding_operand(self, embedding: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``E`` rounded to bf16, kept in bf16 for the GEMMs."""
        if weight.dtype == torch.float32:
            return embedding
        return embedding.to(torch.bfloat16)

    def weight_operands(self, w_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A chunk's weights in bf16 (exact) for the GEMMs, and in fp32 for the update."""
        if w_c.dtype == torch.float32:
            return w_c, w_c
        w16 = bf16_weights(w_c)
        return w16, w16.to(torch.float32)

    def gradient_operand(self, g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``G`` rounded to bf16, kept in bf16 for the GEMMs."""
        if weight.dtype == torch.float32:
            return g
        return g.to(torch.bfloat16)

    def product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a @ b`` as a bf16 GEMM for bf16 operands (result rounded to bf16), in fp32."""
        return (a @ b).to(torch.float32)

    def update(
        self, g: torch.Tensor, e: torch.Tensor, w32: torch.Tensor, lr: float, weight_decay: float
    ) -> torch.Tensor:
        """``U = -lr (G^T E + weight_decay W)``, ``G^T E`` as a bf16 GEMM for bf16 operands."""
        if g.dtype == torch.float32:
            return super().update(g, e, w32, lr, weight_decay)
        upd = self.product(g.T, e).mul_(-lr)
        if weight_decay:
            upd.add_(w32, alpha=-lr * weight_decay)
        return upd
