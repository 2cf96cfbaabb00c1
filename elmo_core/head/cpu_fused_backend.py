"""The head's low-precision training step on any CPU: the reference's fp32 GEMMs, fused passes.

``ReferenceBackend`` does the elementwise work of a bf16/fp8 step (the e4m3 upcast, ``G``'s
rounding to bf16, the column peaks, the update and its stochastic rounding) as chains of torch
passes over each chunk, about 40 for the rounding alone. ``CpuFusedBackend`` keeps the
reference's operands and fp32 products (``E`` rounded to bf16, the weights upcast exactly, fp32
accumulation) and does that work in the fused numba kernels of ``cpu_kernels.py``, one pass each
on every core:

- the chunk's fp32 operand of e4m3 weights (``e4m3_to``: torch's conversion of each byte);
- ``G = bf16(sigmoid(Z) - Y)``: torch's in-place ``sigmoid`` on the chunk's logits, then
  ``round_gradient_`` (the reference's bits);
- each column's largest ``|G|`` (``column_peaks``: the reference's ``amax`` of ``|G|``);
- ``W <- SR(W - lr (G^T E + wd W))`` from the stored weights and the fp32 ``G^T E`` into the
  storage type (``sgd_round_``: ``rounding.py``'s bits and rules). The reference forms ``U`` in
  one ``addmm``; the kernel does the torch code's fp32 operations (``fl(-lr) P``, then ``W``'s
  decay as one fused multiply-add, then ``+ W``), so a weight may round differently from the
  reference's where that changes ``W + U`` by an fp32 ulp. Kahan rows keep the reference's torch
  rounding (``reference.round_update_``) on ``U`` from the same ``G^T E``.

The head picks it on CPUs without bf16 instructions for bf16/fp8 storage (``head.select_backend``;
``CpuBf16Backend`` extends it with bf16 GEMMs where a CPU has them). fp32 storage, ``logits`` and
``topk`` are the reference's. Tested against an fp64 step and against the reference.
"""

from __future__ import annotations

import torch

from elmo_core.head.reference import ReferenceBackend, matmul_tn, round_update_, upcast


class CpuFusedBackend(ReferenceBackend):
    """``ReferenceBackend`` with the low-precision step's elementwise passes in fused numba
    kernels (these hooks; fp32 storage keeps the reference's). ``cpu_kernels`` (numba) is imported
    at the first low-precision step."""

    name = "cpu-fused"
    gemm_dtype = torch.float32
    """The dtype of the low-precision step's GEMM operands (the values are bf16's either way)."""

    def embedding_operand(self, embedding: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``E`` rounded to bf16, in ``gemm_dtype``; fp32 storage takes it as it is."""
        if weight.dtype == torch.float32:
            return embedding
        return embedding.to(torch.bfloat16).to(self.gemm_dtype)

    def weight_operand(self, w_c: torch.Tensor) -> torch.Tensor:
        """A chunk's weights in ``gemm_dtype`` (exact; e4m3 by the fused ``e4m3_to``); fp32
        storage as it is."""
        if w_c.dtype == torch.float8_e4m3fn:
            from elmo_core.head import cpu_kernels

            return cpu_kernels.e4m3_to(w_c, self.gemm_dtype)
        return w_c if w_c.dtype == torch.float32 else w_c.to(self.gemm_dtype)

    def gradient(
        self, z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """``G = bf16(sigmoid(Z) - Y)`` (fp32 values) in place on the fp32 logits ``z``."""
        if weight.dtype == torch.float32:
            return super().gradient(z, rows, cols, weight)
        from elmo_core.head import cpu_kernels

        return cpu_kernels.round_gradient_(z.sigmoid_(), rows, cols)

    def column_peaks(self, g: torch.Tensor) -> torch.Tensor:
        """Each column's largest ``|G|`` (the fused ``cpu_kernels.column_peaks``)."""
        from elmo_core.head import cpu_kernels

        return cpu_kernels.column_peaks(g)

    def apply_update(
        self,
        w_c: torch.Tensor,
        w_op: torch.Tensor,
        g: torch.Tensor,
        e: torch.Tensor,
        lr: float,
        weight_decay: float,
        *,
        seed: int,
        row_offset: int,
        compensation: torch.Tensor | None,
        kept: torch.Tensor | None = None,
    ) -> None:
        """``G^T E`` as one product in the step's GEMM type, then the fused
        ``cpu_kernels.sgd_round_`` on the chunk's rows (on its ``kept`` rows only, where given),
        except its Kahan rows (always the first ``kept`` ones): ``U = -lr (G^T E + weight_decay
        W)`` in fp32 and ``round_update_`` for those."""
        if w_c.dtype == torch.float32:
            super().apply_update(
                w_c,
                w_op,
                g,
                e,
                lr,
                weight_decay,
                seed=seed,
                row_offset=row_offset,
                compensation=compensation,
                kept=kept,
            )
            return
        from elmo_core.head import cpu_kernels

        product = matmul_tn(g, e)
        k = 0 if compensation is None else compensation.shape[0]
        if k:
            w32 = upcast(w_c[:k])
            upd = product[:k].to(torch.float32) * -lr
            if weight_decay:
                upd.add_(w32, alpha=-lr * weight_decay)
            round_update_(w_c[:k], w32, upd, seed, row_offset, compensation)
        rows = torch.arange(k, w_c.shape[0]) if kept is None else kept[k:]
        cpu_kernels.sgd_round_(w_c, product[k:], lr, weight_decay, seed, row_offset, rows)
