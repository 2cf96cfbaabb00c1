"""Lazy, row-sparse AdamW for an embedding table with sparse gradients (the n-gram table on CPU).

A batch touches a few thousand rows of a table of up to 500K; a dense AdamW reads and writes the
whole table and its states every step. `RowSparseAdamW` takes the sparse COO gradient of
`EmbeddingBag(sparse=True)`, sums it per touched row (in fp32) and updates those rows only:
gather rows -> fp32 math -> scatter back (`index_copy_`), so a step costs what the batch touches.
On the CPU (fp32 or bf16 tables) one fused numba kernel does this in a single pass per row
(`row_sparse_kernels.py`, the same maths and bits but for an IEEE square root); other devices and
fp16 tables use torch ops.

The maths is optimi's AdamW (same defaults: betas (0.9, 0.99), eps 1e-6, debiased betas, decoupled
weight decay `p *= 1 - lr * wd`), applied lazily:

- each row has its own step counter (`state["step"]`, int32 per row), so a row's first update is
  Adam's first step whatever the global step, and a row touched every step is updated exactly as
  optimi's dense AdamW would (up to rounding);
- untouched rows are left bit-identical: no moment decay and no weight decay for them (weight decay
  applies to touched rows only, at their touches);
- `exp_avg` / `exp_avg_sq` are full-size tensors in the parameter's dtype (bf16 for a pure-BF16
  encoder, as optimi keeps them); with `kahan_sum` and a bf16/fp16 parameter a `kahan_comp` buffer
  of the same dtype keeps each row's rounding error of its last update, added back at its next one.

The states live in `self.state[p]`, so `state_dict` / `load_state_dict` are torch.optim's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

LOW_PRECISION = (torch.float16, torch.bfloat16)
FUSED_DTYPES = (torch.float32, torch.bfloat16)
"""Parameter dtypes the fused CPU kernel (`row_sparse_kernels.py`) updates."""


class RowSparseAdamW(torch.optim.Optimizer):
    """AdamW over the touched rows of 2-D parameters whose gradients are sparse (see module doc).

    A dense gradient is accepted too (every row with a non-zero gradient row counts as touched),
    but the point is the sparse one.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        kahan_sum: bool = False,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be non-negative")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "weight_decay": weight_decay,
            "eps": eps,
            "kahan_sum": kahan_sum,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError("RowSparseAdamW updates 2-D tables (rows x dims)")

    def _init_state(self, p: Tensor, kahan: bool) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros(p.shape[0], dtype=torch.int32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if kahan:
                state["kahan_comp"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of the rows each parameter's gradient touches."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, group)
        return loss

    @torch.no_grad()
    def step_parameters(self, params: Iterable[Tensor], lr: float | None = None) -> None:
        """`step` for `params` only (parameters of this optimiser), then their gradients are
        dropped: one member's tables on that member's thread (`training.member_lanes`), while
        another thread steps the other members' (each row's state belongs to one table). `lr`:
        this step's learning rate instead of the groups' (a lane may be a step ahead of
        another)."""
        wanted = {id(p) for p in params}
        for group in self.param_groups:
            settings = group if lr is None else {**group, "lr": lr}
            for p in group["params"]:
                if id(p) in wanted and p.grad is not None:
                    self._update(p, p.grad, settings)
                    p.grad = None

    def _update(self, p: Tensor, grad: Tensor, group: dict) -> None:
        if p.device.type == "cpu" and p.dtype in FUSED_DTYPES:
            self._update_fused(p, grad, group)
        else:
            self._update_torch(p, grad, group)

    def _row_betas(self, p: Tensor, rows: Tensor, group: dict) -> tuple[dict, bool, Tensor, Tensor]:
        """Advance the step counters of ``rows``: (the state, whether Kahan, optimi's debiased
        betas of the rows as fp32 columns ``n x 1``)."""
        kahan = bool(group["kahan_sum"]) and p.dtype in LOW_PRECISION
        state = self._init_state(p, kahan)
        beta1, beta2 = group["betas"]
        steps = state["step"].index_select(0, rows) + 1
        state["step"].index_copy_(0, rows, steps)
        t = steps.to(torch.float64).unsqueeze(1)
        # optimi's debiased betas per row: beta_hat = (beta^t - beta) / (beta^t - 1); 0 at t = 1
        beta1_hat = ((beta1**t - beta1) / (beta1**t - 1)).float()
        beta2_hat = ((beta2**t - beta2) / (beta2**t - 1)).float()
        return state, kahan, beta1_hat, beta2_hat

    def _update_fused(self, p: Tensor, grad: Tensor, group: dict) -> None:
        """The update on the CPU: ``row_sparse_kernels.adamw_rows_``, one pass per row."""
        from elmo_core.training.row_sparse_kernels import adamw_rows_

        rows, starts, order, values = _row_segments(grad, p.dtype)
        if rows.numel() == 0:
            return
        state, kahan, beta1_hat, beta2_hat = self._row_betas(p, rows, group)
        adamw_rows_(
            p.detach(),
            state["exp_avg"],
            state["exp_avg_sq"],
            state["kahan_comp"] if kahan else None,
            rows,
            starts,
            order,
            values,
            beta1_hat.squeeze(1),
            beta2_hat.squeeze(1),
            lr=float(group["lr"]),
            weight_decay=float(group["weight_decay"]),
            eps=float(group["eps"]),
        )

    def _update_torch(self, p: Tensor, grad: Tensor, group: dict) -> None:
        """The update in torch ops (other devices, fp16): gather, fp32 maths, scatter."""
        rows, values = _row_gradient(grad)
        if rows.numel() == 0:
            return
        state, kahan, beta1_hat, beta2_hat = self._row_betas(p, rows, group)
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        exp_avg = state["exp_avg"].index_select(0, rows).float()
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).float()
        exp_avg.mul_(beta1_hat).add_((1 - beta1_hat) * values)
        exp_avg_sq.mul_(beta2_hat).add_((1 - beta2_hat) * values * values)
        state["exp_avg"].index_copy_(0, rows, exp_avg.to(p.dtype))
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq.to(p.dtype))
        # the stored (rounded) moments drive the update, as in optimi
        update = state["exp_avg"].index_select(0, rows).float()
        update.div_(state["exp_avg_sq"].index_select(0, rows).float().sqrt_().add_(eps))
        weights = p.detach().index_select(0, rows).float()
        if wd != 0:
            weights.mul_(1 - lr * wd)
        weights.add_(update, alpha=-lr)
        if kahan:
            comp = state["kahan_comp"]
            weights.add_(comp.index_select(0, rows).float())
            rounded = weights.to(p.dtype)
            comp.index_copy_(0, rows, (weights - rounded.float()).to(p.dtype))
            p.detach().index_copy_(0, rows, rounded)
        else:
            p.detach().index_copy_(0, rows, weights.to(p.dtype))


def _row_segments(grad: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A sparse or dense 2-D gradient as (touched row ids, starts, order, values): row
    ``rows[i]``'s gradient is the sum of ``values[order[k]]`` for ``k`` in
    ``starts[i] .. starts[i + 1] - 1``, in the gradient's order; ``values`` contiguous, in fp32 or
    ``dtype``."""
    if grad.is_sparse:
        keys, order = torch.sort(grad._indices()[0], stable=True)
        rows, counts = torch.unique_consecutive(keys, return_counts=True)
        values = grad._values()
    else:
        rows = grad.ne(0).any(dim=1).nonzero().squeeze(1)
        order, counts, values = rows, torch.ones_like(rows), grad
    starts = torch.zeros(rows.numel() + 1, dtype=torch.int64)
    starts[1:] = counts.cumsum(0)
    if values.dtype not in (torch.float32, dtype):
        values = values.float()
    return rows, starts, order, values.contiguous()


def _row_gradient(grad: Tensor) -> tuple[Tensor, Tensor]:
    """(touched row ids, their summed fp32 gradient rows) of a sparse or dense 2-D gradient."""
    if grad.is_sparse:
        indices = grad._indices()[0]
        values = grad._values().float()
        rows, inverse = torch.unique(indices, sorted=True, return_inverse=True)
        summed = values.new_zeros((rows.numel(), values.shape[1]))
        summed.index_add_(0, inverse, values)
        return rows, summed
    rows = grad.ne(0).any(dim=1).nonzero().squeeze(1)
    return rows, grad.index_select(0, rows).float()
