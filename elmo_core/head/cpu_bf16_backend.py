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

from elmo_core.head import rounding
from elmo_core.head.reference import ReferenceBackend, sorted_positives


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
    """``ReferenceBackend`` with the low-precision step's products in oneDNN bf16 GEMMs."""

    name = "cpu-bf16"

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
    ) -> torch.Tensor:
        """One training step in place on ``weight`` (and ``compensation``); returns ``dE``."""
        if weight.dtype == torch.float32:
            return super().step(
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
        num_labels, dim = weight.shape
        batch = embedding.shape[0]
        e16 = embedding.to(torch.bfloat16)
        pos_rows, pos_cols = sorted_positives(rows, cols, batch)
        bounds = torch.arange(0, num_labels + chunk_size, chunk_size, device=weight.device)
        starts = torch.searchsorted(pos_cols, bounds.clamp(max=num_labels)).tolist()
        n_kahan = 0 if compensation is None else compensation.shape[0]
        grad = torch.zeros(batch, dim, device=weight.device, dtype=torch.float32)
        for i, r0 in enumerate(range(0, num_labels, chunk_size)):
            r1 = min(r0 + chunk_size, num_labels)
            w_c = weight[r0:r1]
            w16 = bf16_weights(w_c)
            g = torch.sigmoid((e16 @ w16.T).to(torch.float32))
            p0, p1 = starts[i], starts[i + 1]
            g[pos_rows[p0:p1], pos_cols[p0:p1] - r0] -= 1.0
            g16 = g.to(torch.bfloat16)
            grad += (g16 @ w16).to(torch.float32)
            w32 = w16.to(torch.float32)
            upd = (g16.T @ e16).to(torch.float32).mul_(-lr)
            if weight_decay:
                upd.add_(w32, alpha=-lr * weight_decay)
            k = max(0, min(n_kahan, r1) - r0)
            if k:
                assert compensation is not None
                comp = compensation[r0 : r0 + k]
                upd[:k] -= comp.to(torch.float32)
                y = upd[:k].clone()
            new = rounding.stochastic_round_(upd.add_(w32), weight.dtype, seed, r0, out=w_c)
            if k:
                comp.copy_(rounding.round_nearest((new[:k] - w32[:k]) - y, comp.dtype))
        return grad
