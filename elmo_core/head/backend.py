"""The interface between ``XMCHead`` and an implementation of its maths (a "backend").

Two backends implement it: ``ReferenceBackend`` (plain PyTorch, ``reference.py``; CPU and any GPU,
the oracle of the tests) and ``TritonBackend`` (``triton_backend.py``, fused kernels on CUDA). The
head picks one once, at construction.

Everything here is in *storage units*: ``weight`` is the stored tensor itself, and the head has
already folded its power-of-two storage scale ``s`` (``docs/head.md``) into the arguments: it
passes ``embedding * s``, ``lr / s**2``, ``weight_decay * s**2`` and multiplies the returned input
gradient by ``s``. A backend therefore never sees the scale; with ``s = 1`` the arguments are the
user's.

Semantics of ``step`` (DESIGN.md section 1), for each chunk of ``chunk_size`` consecutive rows
``W_c`` of ``weight`` (the last chunk may be shorter), with ``E`` the embedding:

1. ``Z = E W_c^T`` (B x C), fp32 accumulation. For bf16/e4m3 storage the operands are bf16
   (``E`` rounded to nearest bf16; e4m3 weights upcast exactly); fp32 storage multiplies in fp32.
   A backend may use native fp8 operands instead (e4m3 ``E``), which it must document.
2. ``G = sigmoid(Z) - Y`` with ``Y[b, l] = 1`` iff ``(b, l)`` is a positive pair (duplicates
   count once). For bf16/e4m3 storage ``G`` is then rounded to nearest bf16; fp32 keeps it.
3. ``dE += G W_c`` in fp32, with the weights *before* this step's update.
4. ``U = -lr * (G^T E + weight_decay * W_c)`` in fp32 (the C x d weight gradient need not exist in
   memory), then the new weights, written in place into ``weight``:
   - fp32 storage: ``W_c + U`` (plain SGD).
   - bf16/e4m3 storage, row ``i >= K`` (``K`` = rows of ``compensation``, 0 if None):
     ``SR(W_c + U)``, stochastic rounding as defined in ``rounding.py`` with the random bits
     ``rounding.random_bits(i, j, seed)`` of element ``(i, j)``, ``i`` the row index in the whole
     ``weight`` (not in the chunk), so the result does not depend on the chunk size or launch.
   - rows ``i < K`` (Kahan): ``y = U - c; t = SR(W + y); c = RTN((t - W) - y); W = t``, with ``c``
     the row of ``compensation`` (bf16 or e5m2, rounded to nearest), updated in place.

``step`` returns ``dE`` (B x d, fp32). ``seed`` is the step's 31-bit seed,
``rounding.step_seed(head_seed, step_index)``: the same inputs and seed give bit-identical weights
on the same backend; the two backends agree in distribution (fp32 sums in a different order can
move a value across a rounding boundary; a backend may draw its bits from another counter-based
hash of ``(i, j, seed)`` if it documents so, as the Triton kernels do by default).
"""

from __future__ import annotations

from typing import Protocol

import torch

from elmo_core.errors import ElmoError


class HeadInputError(ElmoError, ValueError):
    """An argument of an ``XMCHead`` call is invalid (shape, dtype, range); the message says so."""


class HeadBackend(Protocol):
    """One implementation of the head's maths; see the module docstring for the exact semantics.

    Inputs the head guarantees: ``weight`` is a contiguous 2-D ``L x d`` tensor of dtype
    ``float8_e4m3fn``, ``bfloat16`` or ``float32`` on the backend's device; ``embedding`` is a
    contiguous ``B x d`` float32 tensor on the same device; ``rows``/``cols`` are 1-D int64 tensors
    of equal length on that device with ``0 <= rows < B`` and ``0 <= cols < L`` (storage rows);
    ``compensation`` is None or a contiguous ``K x d`` bfloat16 / ``float8_e5m2`` tensor
    (``K <= L``, only for low-precision storage); ``chunk_size >= 1``.
    """

    name: str
    """Short name reported by the head (``"reference"``, ``"triton"``)."""

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
        """One training step in place on ``weight`` (and ``compensation``); returns ``dE``."""
        ...

    def default_chunk(self, num_labels: int, dim: int, batch: int, weight: torch.Tensor) -> int:
        """The chunk size (rows) the head uses when the user asked for ``None`` or ``"auto"``."""
        ...

    def logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``E W^T`` (B x n float32) for the rows of ``weight`` given (a chunk, step 1's rule)."""
        ...

    def step_logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``E W^T`` (B x n float32) as this backend's step computes it before its sigmoid (the
        logits the logged loss is taken from; `logits` where they are the same)."""
        ...

    def topk(
        self, weight: torch.Tensor, embedding: torch.Tensor, k: int, *, chunk_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per embedding row the ``k`` largest logits (float32, descending) and their storage row
        ids (int64), scoring ``chunk_size`` rows at a time; never holds B x L scores."""
        ...
