"""``XMCHead``: the L x d output layer stored in fp8 (e4m3), bf16 or fp32, trained without master
weights (DESIGN.md sections 1-4; the maths in ``backend.py``, the rounding in ``rounding.py``).

The head owns the storage (weights, Kahan buffer, a power-of-two storage scale, the row
permutation that puts Kahan rows first, the step counter that seeds the rounding) and validates
every input; a backend (``reference.py`` or ``triton_backend.py``, chosen once) does the maths.
Names follow the issue's API; ``kahan_dtype``, ``init_std``, ``label_counts`` and ``backend`` are
additions (``docs/head.md``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from elmo_core.dtypes import compensation_dtype, storage_dtype
from elmo_core.errors import ConfigError
from elmo_core.head import rounding
from elmo_core.head.backend import HeadBackend, HeadInputError
from elmo_core.head.cpu_bf16_backend import CpuBf16Backend, native_bf16_cpu
from elmo_core.head.cpu_fused_backend import CpuFusedBackend
from elmo_core.head.reference import (
    ReferenceBackend,
    embedding_operand,
    sorted_positives,
    upcast,
)
from elmo_core.precision import (
    KAHAN_DTYPES,
    PRECISIONS,
    is_low_precision,
    valid_below_floor_rate,
)

BACKENDS = ("auto", "reference", "cpu-fused", "cpu-bf16", "triton")
CPU_BACKENDS = {"cpu-fused": CpuFusedBackend, "cpu-bf16": CpuBf16Backend}
BACKEND_ENV = "ELMO_HEAD_BACKEND"
DEFAULT_INIT_STD = 0.02
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
STORED_RMS_LOG2 = 0
"""Low-precision storage holds ``w / s`` with ``s`` a power of two making its rms about 2^this."""
INIT_ROWS = 1 << 16
MAX_GRADIENT_FLOOR = 0.5
"""Largest ``gradient_floor``: a label it skips has every ``|sigmoid(z) - y|`` of the batch below
1/2, i.e. each of its logits already lies on the right side of 0."""

MAX_SCREEN_WINDOW = 255
"""Largest ``screen_window``: a row's age is a uint8 (steps since its last ``|G| >= floor``)."""


def storage_scale(precision: str, rms: float) -> float:
    """The power-of-two scale ``s`` (stored = weight / s) for weights of root-mean-square ``rms``:
    1 for fp32; else ``2^(round(log2 rms) - STORED_RMS_LOG2)`` so that e4m3 holds typical head
    weights (1e-2 .. 1e-4, mostly subnormal or zero unscaled) in its normal range."""
    if not is_low_precision(precision) or not math.isfinite(rms) or rms <= 0.0:
        return 1.0
    return 2.0 ** (round(math.log2(rms)) - STORED_RMS_LOG2)


def select_backend(device: torch.device, backend: str | None) -> HeadBackend:
    """Triton on CUDA when ``triton_kernels`` imports; on a CPU the ``cpu-bf16`` backend where it
    has bf16 instructions (bf16 GEMMs in the low-precision step), else ``cpu-fused`` (fp32 GEMMs,
    fused elementwise kernels); the reference elsewhere. ``backend`` (or the environment variable
    ``ELMO_HEAD_BACKEND``) forces ``"reference"``, ``"cpu-fused"``, ``"cpu-bf16"`` or
    ``"triton"``."""
    choice = backend or os.environ.get(BACKEND_ENV) or "auto"
    if choice not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {choice!r}")
    if choice == "auto" and device.type == "cpu":
        choice = "cpu-bf16" if native_bf16_cpu() else "cpu-fused"
    if choice in CPU_BACKENDS:
        if device.type != "cpu":
            raise ConfigError(f"the {choice} backend runs on the CPU, got {device}")
        return CPU_BACKENDS[choice]()
    if choice == "reference" or (choice == "auto" and device.type != "cuda"):
        return ReferenceBackend()
    if device.type != "cuda":
        raise ConfigError(f"the triton backend needs a CUDA device, got {device}")
    try:
        from elmo_core.head.triton_backend import TritonBackend
    except ImportError as exc:
        if choice == "triton":
            raise ConfigError(f"the triton backend does not import: {exc}") from exc
        return ReferenceBackend()
    return TritonBackend()


def _int_option(name: str, value: object, low: int) -> int:
    """``value`` as an int >= ``low`` (Python or numpy integers), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _kahan_permutation(
    label_counts: object, num_labels: int, num_kahan: int
) -> torch.Tensor | None:
    """Storage row -> label id putting the ``num_kahan`` most frequent labels first (ties: lower
    id first), or None when they already are rows ``0 .. num_kahan-1``."""
    counts = torch.as_tensor(label_counts).reshape(-1)
    if counts.numel() != num_labels:
        raise ConfigError(f"label_counts has {counts.numel()} entries, expected {num_labels}")
    if counts.is_floating_point() and not bool(torch.isfinite(counts).all()):
        raise ConfigError("label_counts must be finite")
    if counts.numel() and float(counts.min()) < 0:
        raise ConfigError("label_counts must be non-negative")
    order = torch.sort(-counts.to(torch.float64), stable=True).indices
    top = torch.sort(order[:num_kahan]).values
    if torch.equal(top, torch.arange(num_kahan)):
        return None
    rest = torch.ones(num_labels, dtype=torch.bool)
    rest[top] = False
    return torch.cat([top, torch.nonzero(rest).reshape(-1)])


class XMCHead:
    """The low-precision XMC output layer; see ``docs/head.md`` for the API and the maths."""

    def __init__(
        self,
        num_labels: int,
        dim: int,
        precision: str = "fp8",
        chunk_size: int | str | None = None,
        head_ratio: float = 0.0,
        kahan_dtype: str = "bf16",
        weight_decay: float = 0.0,
        init_std: float = DEFAULT_INIT_STD,
        seed: int = 0,
        device: torch.device | str | None = None,
        label_counts: Sequence[float] | torch.Tensor | None = None,
        backend: str | None = None,
        gradient_floor: float = 0.0,
        below_floor_rate: float = 0.0,
        screen_window: int = 0,
    ) -> None:
        num_labels, dim = _int_option("num_labels", num_labels, 1), _int_option("dim", dim, 1)
        seed = _int_option("seed", seed, 0)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if chunk_size is not None and chunk_size != "auto":
            chunk_size = _int_option("chunk_size (None, 'auto' or an int)", chunk_size, 1)
        if not 0.0 <= float(head_ratio) <= 1.0:
            raise ConfigError(f"head_ratio must lie in [0, 1], got {head_ratio!r}")
        if kahan_dtype not in KAHAN_DTYPES:
            raise ConfigError(f"kahan_dtype must be one of {KAHAN_DTYPES}, got {kahan_dtype!r}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0.0):
            raise ConfigError(f"weight_decay must be finite and >= 0, got {weight_decay!r}")
        if not (math.isfinite(init_std) and init_std >= 0.0):
            raise ConfigError(f"init_std must be finite and >= 0, got {init_std!r}")
        if not 0.0 <= float(gradient_floor) <= MAX_GRADIENT_FLOOR:
            raise ConfigError(
                f"gradient_floor must lie in [0, {MAX_GRADIENT_FLOOR}], got {gradient_floor!r}"
            )
        self.num_labels, self.dim, self.precision = num_labels, dim, precision
        self.chunk_size, self.head_ratio, self.kahan_dtype = (
            chunk_size,
            float(head_ratio),
            kahan_dtype,
        )
        self.weight_decay, self.init_std, self.seed = float(weight_decay), float(init_std), seed
        self.device = torch.device(device) if device is not None else torch.get_default_device()
        self.dtype = storage_dtype(precision)
        self.num_kahan = round(self.head_ratio * num_labels) if is_low_precision(precision) else 0
        self.backend = select_backend(self.device, backend)
        if gradient_floor and self.backend.name == "triton":
            raise ConfigError(
                "gradient_floor > 0 is a CPU option (the reference and CPU backends); the Triton "
                "kernels always update every label"
            )
        if not valid_below_floor_rate(below_floor_rate):
            raise ConfigError(
                "below_floor_rate must be 0 or a power of two 2^-k, 0 <= k <= 24, got "
                f"{below_floor_rate!r}"
            )
        screen_window = _int_option("screen_window", screen_window, 0)
        if screen_window > MAX_SCREEN_WINDOW:
            raise ConfigError(
                f"screen_window must lie in [0, {MAX_SCREEN_WINDOW}], got {screen_window!r}"
            )
        self.gradient_floor = float(gradient_floor)
        self.below_floor_rate = float(below_floor_rate)
        self.screen_window = screen_window
        self.screen = (
            torch.zeros(num_labels, dtype=torch.uint8, device=self.device)
            if screen_window and self.gradient_floor
            else None
        )
        self.steps = 0
        self.perm: torch.Tensor | None = None
        self.inv_perm: torch.Tensor | None = None
        if label_counts is not None and self.num_kahan:
            self._set_perm(_kahan_permutation(label_counts, num_labels, self.num_kahan))
        self.compensation = (
            torch.zeros(
                self.num_kahan, dim, device=self.device, dtype=compensation_dtype(self.kahan_dtype)
            )
            if self.num_kahan
            else None
        )
        self.scale = storage_scale(precision, self.init_std if self.init_std > 0 else dim**-0.5)
        self.weight = torch.zeros(num_labels, dim, device=self.device, dtype=self.dtype)
        self._float32_copy: torch.Tensor | None = None
        self._default_chunks: dict[int, int] = {}
        if self.init_std == 0.0:  # e.g. a head about to load a checkpoint
            return
        gen = torch.Generator(device=self.device).manual_seed(seed)
        for r0 in range(0, num_labels, INIT_ROWS):
            n = min(INIT_ROWS, num_labels - r0)
            w = torch.randn(n, dim, device=self.device, generator=gen) * (
                self.init_std / self.scale
            )
            self.weight[r0 : r0 + n] = rounding.round_nearest(w, self.dtype)

    # -- validation -------------------------------------------------------------------------

    def _set_perm(self, perm: torch.Tensor | None) -> None:
        self.perm = None if perm is None else perm.to(device=self.device, dtype=torch.int64)
        self.inv_perm = None
        if self.perm is not None:
            self.inv_perm = torch.empty_like(self.perm)
            self.inv_perm[self.perm] = torch.arange(self.num_labels, device=self.device)

    def _embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        if not isinstance(embedding, torch.Tensor) or not embedding.is_floating_point():
            raise HeadInputError("embedding must be a floating-point tensor")
        if embedding.dim() != 2 or embedding.shape[1] != self.dim or embedding.shape[0] < 1:
            raise HeadInputError(
                f"embedding must have shape (B, {self.dim}), B >= 1, got {tuple(embedding.shape)}"
            )
        return embedding.detach().to(device=self.device, dtype=torch.float32).contiguous()

    def _pairs(
        self, rows: torch.Tensor, cols: torch.Tensor, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated positive pairs on the device; ``cols`` mapped to storage rows."""
        for name, t in (("rows", rows), ("cols", cols)):
            if (
                not isinstance(t, torch.Tensor)
                or t.is_floating_point()
                or t.is_complex()
                or t.dtype == torch.bool
            ):
                raise HeadInputError(f"{name} must be an integer tensor")
            if t.dim() != 1:
                raise HeadInputError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
        if rows.numel() != cols.numel():
            raise HeadInputError(
                f"rows and cols differ in length: {rows.numel()} != {cols.numel()}"
            )
        if rows.numel():  # checked where the pairs are: no device sync for pairs on the host
            r_lo, r_hi, c_lo, c_hi = torch.stack(
                [rows.min(), rows.max(), cols.min(), cols.max()]
            ).tolist()
            if r_lo < 0 or r_hi >= batch:
                raise HeadInputError(
                    f"rows must lie in [0, {batch}) (the batch), got [{r_lo}, {r_hi}]"
                )
            if c_lo < 0 or c_hi >= self.num_labels:
                raise HeadInputError(
                    f"cols (label ids) must lie in [0, {self.num_labels}), got [{c_lo}, {c_hi}]"
                )
        rows = rows.to(device=self.device, dtype=torch.int64, non_blocking=True)
        cols = cols.to(device=self.device, dtype=torch.int64, non_blocking=True)
        if self.inv_perm is not None:
            cols = self.inv_perm[cols]
        return rows, cols

    def _chunk(self, batch: int) -> int:
        if isinstance(self.chunk_size, int):
            return min(self.chunk_size, self.num_labels)
        if batch not in self._default_chunks:  # asks the driver for free memory: once per size
            self._default_chunks[batch] = self.backend.default_chunk(
                self.num_labels, self.dim, batch, self.weight
            )
        return self._default_chunks[batch]

    # -- training and scoring -----------------------------------------------------------------

    def step(
        self, embedding: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, lr: float
    ) -> torch.Tensor:
        """One training step on a batch: updates the weights in place (stochastic rounding, Kahan
        rows) and returns the embedding's gradient ``G W`` (B x d fp32, pre-update weights) of the
        summed BCE. ``rows``/``cols``: int64 positive pairs (batch row, label id)."""
        e = self._embedding(embedding)
        rows, cols = self._pairs(rows, cols, e.shape[0])
        if not math.isfinite(lr):
            raise HeadInputError(f"lr must be finite, got {lr!r}")
        s = self.scale
        if abs(float(lr)) / (s * s) > FLOAT32_MAX:
            raise HeadInputError(
                f"lr {lr!r} is too large: the step on the scaled weights, lr / scale^2 = "
                f"{float(lr) / (s * s):.3g}, overflows float32"
            )
        self._float32_copy = None
        grad = self.backend.step(
            self.weight,
            e * s,
            rows,
            cols,
            float(lr) / (s * s),
            seed=rounding.step_seed(self.seed, self.steps),
            weight_decay=self.weight_decay * s * s,
            compensation=self.compensation,
            chunk_size=self._chunk(e.shape[0]),
            gradient_floor=self.gradient_floor,
            below_floor_rate=self.below_floor_rate,
            screen=self.screen,
            screen_window=self.screen_window,
        )
        self.steps += 1
        return grad * s

    def topk(self, embedding: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest raw logits per row (float32, descending) and their label ids (int64),
        scored chunk by chunk; never holds B x L scores."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.num_labels:
            raise HeadInputError(f"k must be an int in [1, {self.num_labels}], got {k!r}")
        e = self._embedding(embedding) * self.scale
        weight = self.weight
        if self._float32_copy is not None:  # the same products: the embedding rounded as before
            weight, e = self._float32_copy, embedding_operand(e, self.weight)
        vals, ids = self.backend.topk(weight, e, k, chunk_size=self._chunk(e.shape[0]))
        return vals, (ids if self.perm is None else self.perm[ids])

    @torch.no_grad()
    def keep_float32_copy(self, max_bytes: int) -> bool:
        """For repeated scoring (a CPU predictor): keep an exact fp32 copy of the low-precision
        weights, so `topk` stops converting every chunk on every call. Returns False, keeping
        nothing, for fp32 storage or when the copy would exceed `max_bytes`. Any change of the
        weights (`step`, `load_weights`, `load_state_dict`) drops the copy, so a copy already kept
        is current and is kept as it is."""
        size = self.num_labels * self.dim * 4
        if self.weight.dtype == torch.float32 or size > max_bytes:
            self._float32_copy = None
            return False
        if self._float32_copy is None:
            if self.weight.device.type == "cpu" and self.weight.dtype == torch.float8_e4m3fn:
                from elmo_core.head import cpu_kernels  # numba: 3x torch's table gather here

                self._float32_copy = cpu_kernels.e4m3_to(self.weight, torch.float32)
            else:
                self._float32_copy = upcast(self.weight)
        return True

    @torch.no_grad()
    def loss(self, embedding: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> float:
        """The summed BCE over all labels divided by B (for logging; a full forward pass over the
        logits as the step computes them, `step_logits`: on a bf16 CPU backend bf16 products, each
        logit within 2^-9 of its fp32 value)."""
        e = self._embedding(embedding)
        batch = e.shape[0]
        rows, cols = self._pairs(rows, cols, batch)
        pos_rows, pos_cols = sorted_positives(rows, cols, batch)
        chunk = self._chunk(batch)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for r0 in range(0, self.num_labels, chunk):
            z = self.backend.step_logits(self.weight[r0 : r0 + chunk], e * self.scale)
            sel = (pos_cols >= r0) & (pos_cols < r0 + chunk)
            total += F.softplus(z).sum(dtype=torch.float64)
            total -= z[pos_rows[sel], pos_cols[sel] - r0].sum(dtype=torch.float64)
        return float(total) / batch

    # -- weights and checkpoints ------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Bytes of the head's persistent storage (weights, Kahan buffer, permutation)."""
        extra = [t for t in (self.compensation, self.perm, self.inv_perm) if t is not None]
        return self.weight.nbytes + sum(t.nbytes for t in extra)

    @torch.no_grad()
    def dequantized(self) -> torch.Tensor:
        """A float32 L x d copy of the weights as the model sees them (label order, scaled)."""
        out = torch.empty(self.num_labels, self.dim, device=self.device, dtype=torch.float32)
        for r0 in range(0, self.num_labels, INIT_ROWS):
            vals = self.weight[r0 : r0 + INIT_ROWS].to(torch.float32) * self.scale
            if self.perm is None:
                out[r0 : r0 + vals.shape[0]] = vals
            else:
                out[self.perm[r0 : r0 + vals.shape[0]]] = vals
        return out

    @torch.no_grad()
    def load_weights(self, weights: torch.Tensor) -> None:
        """Set the weights from a float L x d tensor (label order), rounded to nearest into the
        storage type. The storage scale is re-chosen from the new weights' rms (and raised until
        the largest fits e4m3's 448); the Kahan buffer is cleared."""
        if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
            raise HeadInputError("weights must be a floating-point tensor")
        if tuple(weights.shape) != (self.num_labels, self.dim):
            raise HeadInputError(
                f"weights must be ({self.num_labels}, {self.dim}), got {tuple(weights.shape)}"
            )
        self._float32_copy = None
        sq, amax = 0.0, 0.0
        for r0 in range(0, self.num_labels, INIT_ROWS):
            part = weights[r0 : r0 + INIT_ROWS].to(torch.float64)
            if not bool(torch.isfinite(part).all()):
                raise HeadInputError("weights contain NaN or inf")
            sq += float(part.square().sum())
            amax = max(amax, float(part.abs().max()))
        rms = math.sqrt(sq / weights.numel())
        if rms > 0.0:
            self.scale = storage_scale(self.precision, rms)
            while self.precision == "fp8" and amax / self.scale > rounding.E4M3_MAX:
                self.scale *= 2.0
        for r0 in range(0, self.num_labels, INIT_ROWS):
            idx = (
                slice(r0, r0 + INIT_ROWS)
                if self.perm is None
                else self.perm[r0 : r0 + INIT_ROWS].cpu()
            )
            src = weights[idx].to(device=self.device, dtype=torch.float32)
            self.weight[r0 : r0 + src.shape[0]] = rounding.round_nearest(
                src / self.scale, self.dtype
            )
        if self.compensation is not None:
            self.compensation.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors of a checkpoint (safetensors-friendly): ``weight`` (storage dtype, storage row
        order), ``scale`` (0-d fp64), ``step`` and ``seed`` (0-d int64: the rounding's random
        bits), and when present
        ``compensation`` (Kahan buffer), ``perm`` (storage row -> label id) and ``screen`` (the
        screened step's row ages). Shares storage."""
        state = {
            "weight": self.weight,
            "scale": torch.tensor(self.scale, dtype=torch.float64),
            "step": torch.tensor(self.steps, dtype=torch.int64),
            "seed": torch.tensor(self.seed, dtype=torch.int64),
        }
        if self.compensation is not None:
            state["compensation"] = self.compensation
        if self.perm is not None:
            state["perm"] = self.perm
        if self.screen is not None:
            state["screen"] = self.screen
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a ``state_dict`` of a head of the same labels, dim, precision and Kahan rows."""
        missing = {"weight", "scale", "step", "seed"} - set(state)
        if missing:
            raise HeadInputError(f"state_dict lacks {sorted(missing)}")
        w = state["weight"]
        if tuple(w.shape) != (self.num_labels, self.dim) or w.dtype != self.dtype:
            raise HeadInputError(
                f"state weight is {tuple(w.shape)} {w.dtype}, this head is "
                f"({self.num_labels}, {self.dim}) {self.dtype}"
            )
        comp = state.get("compensation")
        if self.compensation is None and comp is not None and comp.numel():
            raise HeadInputError("state has a Kahan buffer but this head has head_ratio 0")
        if self.compensation is not None:
            if (
                comp is None
                or comp.shape != self.compensation.shape
                or comp.dtype != self.compensation.dtype
            ):
                got = None if comp is None else (tuple(comp.shape), comp.dtype)
                raise HeadInputError(
                    f"state Kahan buffer {got} does not match this head's "
                    f"{(tuple(self.compensation.shape), self.compensation.dtype)}"
                )
            self.compensation.copy_(comp)
        perm = state.get("perm")
        if perm is not None:
            perm = perm.to(torch.int64).cpu()
            if not torch.equal(torch.sort(perm).values, torch.arange(self.num_labels)):
                raise HeadInputError("state perm is not a permutation of the label ids")
        self._set_perm(perm)
        if self.screen is not None:  # a state without ages (an older run): every row scored
            ages = state.get("screen")
            if ages is None:
                self.screen.zero_()
            elif ages.shape != self.screen.shape or ages.dtype != self.screen.dtype:
                raise HeadInputError(
                    f"state screen {tuple(ages.shape)} {ages.dtype} does not match this head's "
                    f"({self.num_labels},) torch.uint8"
                )
            else:
                self.screen.copy_(ages.to(self.device))
        self._float32_copy = None
        self.weight.copy_(w.to(self.device))
        self.scale = float(state["scale"])
        self.steps = int(state["step"])
        self.seed = int(state["seed"])
