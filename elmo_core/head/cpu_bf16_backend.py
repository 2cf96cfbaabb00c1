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

The elementwise work around the GEMMs is ``CpuFusedBackend``'s (``cpu_fused_backend.py``):
fused numba kernels (``cpu_kernels.py``), each one pass over a chunk on every core, with the bits
of the torch code they replaced: here the e4m3 weights' bf16 operand, ``G = bf16(sigmoid(Z) - Y)``
from the bf16 ``Z`` (by tables), and the update ``W <- SR(W - lr (G^T E + wd W))`` straight from
the stored weights and the bf16 ``G^T E`` into the storage type (``rounding.py``'s bits and
rules). Kahan rows keep the reference's torch rounding (``reference.round_update_``) on ``U``
computed from the same bf16 ``G^T E``. The logged loss (``step_logits``) takes the step's bf16
``Z``. fp32 storage, ``logits`` and ``topk`` (prediction) keep the reference's fp32 products. The
head picks this backend on such CPUs for bf16/fp8 storage (``head.select_backend``); the tests
compare it with an fp64 computation and with the reference's weights.
"""

from __future__ import annotations

import torch

from elmo_core.head.cpu_fused_backend import CpuFusedBackend


def native_bf16_cpu() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


class CpuBf16Backend(CpuFusedBackend):
    """``CpuFusedBackend`` with the low-precision step's products in oneDNN bf16 GEMMs: bf16
    operands, hence a bf16 ``Z``, ``G`` and ``G^T E`` (fp32 storage keeps the reference's)."""

    name = "cpu-bf16"
    gemm_dtype = torch.bfloat16

    def gradient(
        self, z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """``G = bf16(sigmoid(Z) - Y)`` in bf16, in place on the bf16 GEMM's logits ``z``."""
        if weight.dtype == torch.float32:
            return super().gradient(z, rows, cols, weight)
        from elmo_core.head import cpu_kernels

        return cpu_kernels.bce_gradient_(z, rows, cols)
