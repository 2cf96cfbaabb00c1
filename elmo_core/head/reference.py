"""The head's maths in plain PyTorch: the oracle of the tests, and what the CPU backends build on.

One chunk of ``C`` weight rows at a time (DESIGN.md section 1; exact semantics in ``backend.py``):

    Z  = E W_c^T                      fp32 accumulation of bf16 operands (fp8 upcast to bf16)
    G  = sigmoid(Z) - Y               rounded to bf16 for low-precision storage
    dE += G W_c                       pre-update weights, fp32
    U  = -lr (G^T E + wd W_c)         fp32, one chunk
    W_c <- SR(W_c + U)                or Kahan: y = U - c; t = SR(W + y); c = (t - W) - y; W = t

Only one chunk is ever upcast: the transient memory is about ``bytes_per_label(d, B) * C``; the
full ``L x d`` fp32 weights and the ``B x L`` logits never exist. "bf16 operands with fp32
accumulation" is computed as an fp32 product of the bf16-rounded values (exact operands, fp32 sums),
which is what the tensor cores compute too.

``ReferenceBackend.step`` runs this loop; the chunk's operands, ``G`` and the update are hooks
(``weight_operand``, ``gradient``, ``column_peaks``, ``apply_update``) that the CPU backends
override with fused kernels (``CpuFusedBackend``) and bf16 GEMMs (``CpuBf16Backend``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from elmo_core.head import rounding

CPU_CHUNK_BUDGET = 256 << 20
"""Transient bytes one chunk may take on the CPU."""
CUDA_CHUNK_FRACTION = 0.25
"""Share of the free GPU memory one chunk may take."""


def bytes_per_label(dim: int, batch: int, low_precision: bool) -> int:
    """Transient bytes one label row costs within a chunk: the upcast row, the update (the
    rounding works in place on it, with buffers of a fixed size: ``rounding.stochastic_round_``),
    the fp8 upcast's int32 index (measured on the CPU: about 10 bytes per weight for e4m3 and bf16,
    by peak RSS over one step), the logits and G."""
    return (16 * dim if low_precision else 12 * dim) + 12 * batch


def memory_chunk(num_labels: int, dim: int, batch: int, device: torch.device, low: bool) -> int:
    """The largest chunk whose transient memory fits the device's budget (at least 128 rows)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = int(free * CUDA_CHUNK_FRACTION)
    else:
        budget = CPU_CHUNK_BUDGET
    return max(1, min(num_labels, max(128, budget // bytes_per_label(dim, batch, low))))


def upcast(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` in fp32. On the CPU, fp8 goes through a table of its 256 bytes (torch's own
    conversion of each, so the same values) gathered by ``index_select``: 1.5x to 2x as fast as
    ``.to`` there."""
    if weight.device.type != "cpu" or weight.element_size() != 1:
        return weight.to(torch.float32)
    table = torch.arange(256, dtype=torch.uint8).view(weight.dtype).to(torch.float32)
    index = weight.contiguous().view(torch.uint8).reshape(-1).to(torch.int32)
    return table.index_select(0, index).reshape(weight.shape)


def matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T``. Two fp32 CPU operands outside autograd go through oneDNN's fp32 matmul
    (torch's `mkldnn._linear_pointwise`, fp32 accumulation, torch's own thread pool) where this
    torch has it: on the 2-core AMD EPYC VMs the product of 512 embeddings by 20,359 x 1,026
    weights ran at 2.2x (with AVX-512) and 1.6x (AVX2 only) the rate of the MKL sgemm that ``@``
    calls, and a screened training step's logits (256 embeddings by 3,800 x 513 weights, one
    member at wordnet-taxonomy's shape) at 1.4x on the AVX2 one (`bench/cpu_fp32_matmul.py`;
    docs/benchmarks.md). Elsewhere, and for any other operands, ``@``."""
    linear = _onednn_for(a, b)
    if linear is not None:
        return linear(a, b, None, "none", [], "")
    return a @ b.T


def matmul_tn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b`` (the step's ``G^T E``). Two fp32 CPU operands outside autograd go through
    oneDNN's fp32 matmul of the transposed copies: on the AVX2-only 2-core VM, one thread,
    ``G^T E`` of a screened step at wordnet-taxonomy's shape (G 256 x 2,400, E 256 x 513) took
    13.8 ms this way against 17.1 ms for MKL's product of the transposed view, about the same at
    3,800 columns (`bench/cpu_fp32_matmul.py --update`; docs/benchmarks.md, fourteenth pass).
    Elsewhere, and for an empty sum (no rows: oneDNN has no primitive for it), ``a.T @ b``."""
    linear = _onednn_for(a, b)
    if linear is not None and a.shape[0]:
        return linear(a.T.contiguous(), b.T.contiguous(), None, "none", [], "")
    return a.T @ b


def _onednn_for(a: torch.Tensor, b: torch.Tensor) -> Callable[..., torch.Tensor] | None:
    """oneDNN's fp32 linear when a product of ``a`` and ``b`` takes it (see ``matmul_nt``), else
    None."""
    if (
        a.device.type == "cpu"
        and a.dtype == b.dtype == torch.float32
        and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    ):
        return _ONEDNN_LINEAR
    return None


def _onednn_linear() -> Callable[..., torch.Tensor] | None:
    """torch's oneDNN linear op (`x @ w.T`), or None where this build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op: Callable[..., torch.Tensor] = torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None
    return op


_ONEDNN_LINEAR = _onednn_linear()


def embedding_operand(embedding: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The embedding as the products see it: rounded to bf16 for low-precision storage."""
    if weight.dtype == torch.float32:
        return embedding
    return embedding.to(torch.bfloat16).to(torch.float32)


def sorted_positives(
    rows: torch.Tensor, cols: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique positive pairs sorted by column (storage row): (rows, cols)."""
    keys = torch.unique(cols * batch + rows)
    return keys % batch, keys // batch


def round_update_(
    w_c: torch.Tensor,
    w32: torch.Tensor,
    upd: torch.Tensor,
    seed: int,
    row_offset: int,
    compensation: torch.Tensor | None,
    row_ids: torch.Tensor | None = None,
) -> None:
    """``W_c <- SR(W_c + U)`` in place on the low-precision rows ``w_c`` (``w32``: them in fp32;
    ``upd``: ``U``, overwritten), row ``i`` drawing the bits of row ``row_offset + i`` (of
    ``row_ids[i]`` where given). The first rows, as many as ``compensation`` has, are Kahan rows:
    ``y = U - c; t = SR(W + y); c = RTN((t - W) - y)``, with ``c`` their rows of the buffer
    (updated in place)."""
    k = 0 if compensation is None else compensation.shape[0]
    if compensation is not None:
        upd[:k] -= upcast(compensation)
        y = upd[:k].clone()
    new = rounding.stochastic_round_(
        upd.add_(w32), w_c.dtype, seed, row_offset, out=w_c, row_ids=row_ids
    )
    if compensation is not None:
        compensation.copy_(rounding.round_nearest((new[:k] - w32[:k]) - y, compensation.dtype))


def kept_columns(
    peaks: torch.Tensor,
    floor: float,
    always: int,
    *,
    rate: float,
    seed: int,
    row_offset: int,
    drawn: torch.Tensor | None = None,
    certain: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The columns of a chunk that a step with a gradient floor keeps, from ``peaks`` (each
    column's largest ``|G|`` in the batch): those not below ``floor`` (a NaN peak is kept, so that
    it reaches the weights and the run's finite check), the first ``always`` (the chunk's Kahan
    rows), and each column below the floor with probability ``rate`` (drawn from the bits
    ``random_bits(row, -1, seed)`` of its row in the whole weight). When a screened step scored
    only some rows, ``drawn`` gives their draws (``screened_rows``) and ``certain`` which of them
    were not scored only because drawn; a column not certain is kept as drawn whatever its peak.
    Returns the kept ids among the columns (sorted int64) and the positions among them of the
    columns kept as drawn (their ``G`` is to be scaled by ``1 / rate``), or None when every column
    is kept."""
    below = peaks.to(torch.float32) < floor
    if certain is not None:
        below |= ~certain
    below[:always] = False
    if not bool(below.any()):
        return None
    keep = ~below
    if rate:
        if drawn is None:
            ids = torch.arange(row_offset, row_offset + peaks.shape[0], device=peaks.device)
            drawn = drawn_rows(ids, rate, seed)
        keep |= below & drawn
    kept = keep.nonzero().squeeze(1)
    return kept, below[kept].nonzero().squeeze(1)


def scale_columns_(g: torch.Tensor, columns: torch.Tensor, factor: float) -> None:
    """``g[:, columns] *= factor`` in place. Where ``factor`` is exact in ``g``'s dtype (1/rate
    for a power-of-two rate, as the default 1/16) every column is multiplied by a vector of 1s and
    ``factor``s in that dtype, one pass over ``g`` and the same products (x1 is exact); a
    gather-scatter of the columns took 7% of a screened step."""
    exact = torch.tensor(factor, dtype=g.dtype).item() == factor
    if not exact:
        g[:, columns] *= factor
        return
    scale = torch.ones(g.shape[1], dtype=g.dtype, device=g.device)
    scale[columns] = factor
    g.mul_(scale)


def drawn_rows(rows: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """Which weight ``rows`` a step's below-floor draw keeps: ``random_bits(row, -1, seed)``
    under ``rate * 2^32`` (probability ``rate`` each)."""
    column = torch.tensor(-1, device=rows.device)
    return rounding.random_bits(rows, column, seed) < round(rate * 2.0**32)


def screened_rows(
    ages: torch.Tensor,
    window: int,
    always: int,
    positives: torch.Tensor,
    *,
    rate: float,
    seed: int,
    row_offset: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The rows of a chunk that a screened step scores: those with some ``|G| >= floor`` in the
    last ``window`` steps (``ages``: steps since that last happened, per row), the first
    ``always`` (Kahan rows), the batch's ``positives`` (rows within the chunk) and the rows the
    below-floor draw picks. Returns the rows (sorted int64), their draws and which of them are
    certain (not there only because drawn), or None when every row is scored."""
    certain = ages < window
    certain[:always] = True
    certain[positives] = True
    if bool(certain.all()):
        return None
    rows = torch.arange(row_offset, row_offset + ages.shape[0], device=ages.device)
    drawn = drawn_rows(rows, rate, seed) if rate else torch.zeros_like(certain)
    picked = (certain | drawn).nonzero().squeeze(1)
    return picked, drawn[picked], certain[picked]


def age_rows_(
    ages: torch.Tensor, rows: torch.Tensor | None, peaks: torch.Tensor, floor: float
) -> None:
    """After a screened step's chunk: every row one step older (saturating at the dtype's
    largest value), then the scored ``rows`` (all when None) whose peak is not below ``floor``
    back to 0."""
    ages.add_((ages < torch.iinfo(ages.dtype).max).to(ages.dtype))
    above = ~(peaks.to(torch.float32) < floor)
    ages[above.nonzero().squeeze(1) if rows is None else rows[above]] = 0


class ReferenceBackend:
    """The plain-PyTorch ``HeadBackend``: any device, any storage type."""

    name = "reference"

    def default_chunk(self, num_labels: int, dim: int, batch: int, weight: torch.Tensor) -> int:
        """Chunk size when the user asked for ``None``/``"auto"``: from the memory budget."""
        low = weight.dtype != torch.float32
        return memory_chunk(num_labels, dim, batch, weight.device, low)

    def logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``E W^T`` (B x n fp32) for the rows given."""
        return matmul_nt(embedding_operand(embedding, weight), upcast(weight))

    def step_logits(self, weight: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The step's logits: the step's operands and product (here `logits`), in fp32."""
        w_op = self.weight_operand(weight)
        return matmul_nt(self.embedding_operand(embedding, weight), w_op).float()

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
        """One training step in place on ``weight`` (and ``compensation``); returns ``dE``.
        With ``screen`` (uint8 per weight row: steps since the row last had some ``|G| >=
        gradient_floor``, updated in place), only the rows of ``screened_rows`` are scored."""
        num_labels, dim = weight.shape
        batch = embedding.shape[0]
        e = self.embedding_operand(embedding, weight)
        pos_rows, pos_cols = sorted_positives(rows, cols, batch)
        bounds = torch.arange(0, num_labels + chunk_size, chunk_size, device=weight.device)
        starts = torch.searchsorted(pos_cols, bounds.clamp(max=num_labels)).tolist()
        n_kahan = 0 if compensation is None else compensation.shape[0]
        grad = torch.zeros(batch, dim, device=weight.device, dtype=torch.float32)
        for i, r0 in enumerate(range(0, num_labels, chunk_size)):
            r1 = min(r0 + chunk_size, num_labels)
            w_c = weight[r0:r1]
            p0, p1 = starts[i], starts[i + 1]
            k = max(0, min(n_kahan, r1) - r0)
            chunk_rows, chunk_cols = pos_rows[p0:p1], pos_cols[p0:p1] - r0
            scored = drawn_scored = certain = None
            if screen is not None and gradient_floor:
                picked_rows = screened_rows(
                    screen[r0:r1],
                    screen_window,
                    k,
                    chunk_cols,
                    rate=below_floor_rate,
                    seed=seed,
                    row_offset=r0,
                )
                if picked_rows is not None:
                    scored, drawn_scored, certain = picked_rows
                    chunk_cols = torch.searchsorted(scored, chunk_cols)
            w_op = self.weight_operand(w_c if scored is None else w_c.index_select(0, scored))
            g = self.gradient(matmul_nt(e, w_op), chunk_rows, chunk_cols, weight)
            kept = None
            if gradient_floor:
                peaks = self.column_peaks(g)
                if screen is not None:
                    age_rows_(screen[r0:r1], scored, peaks, gradient_floor)
                picked = kept_columns(
                    peaks,
                    gradient_floor,
                    k,
                    rate=below_floor_rate,
                    seed=seed,
                    row_offset=r0,
                    drawn=drawn_scored,
                    certain=certain,
                )
                if picked is not None:
                    kept, drawn = picked
                    if not kept.numel():
                        continue
                    g, w_op = g.index_select(1, kept), w_op.index_select(0, kept)
                    if drawn.numel():
                        scale_columns_(g, drawn, 1.0 / below_floor_rate)
                if scored is not None:
                    kept = scored if kept is None else scored[kept]
            grad += g @ w_op
            comp = None if compensation is None or not k else compensation[r0 : r0 + k]
            self.apply_update(
                w_c,
                w_op,
                g,
                e,
                lr,
                weight_decay,
                seed=seed,
                row_offset=r0,
                compensation=comp,
                kept=kept,
            )
        return grad

    # The step's operands, G and the update, one hook each (the CPU backends override them).

    def embedding_operand(self, embedding: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``E`` as the step's products take it (``embedding_operand``: bf16 values in fp32)."""
        return embedding_operand(embedding, weight)

    def weight_operand(self, w_c: torch.Tensor) -> torch.Tensor:
        """A chunk's weights as the products take them: in fp32 (``upcast``)."""
        return upcast(w_c)

    def gradient(
        self, z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """``G = sigmoid(Z) - Y`` of a chunk's logits ``z`` (B x C), ``Y`` 1 at the distinct pairs
        ``(rows, cols)`` (``cols`` within the chunk); rounded to bf16 (values kept in fp32) for
        low-precision storage."""
        g = torch.sigmoid(z)
        g[rows, cols] -= 1.0
        if weight.dtype == torch.float32:
            return g
        return g.to(torch.bfloat16).to(torch.float32)

    def column_peaks(self, g: torch.Tensor) -> torch.Tensor:
        """Each column's largest ``|G|`` over the batch (a NaN stays NaN)."""
        return g.abs().amax(0)

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
        """The new weights of the chunk ``w_c`` (rows ``row_offset ..`` of the weight) in place:
        ``U = -lr (G^T E + weight_decay W)`` in fp32, then ``W + U`` for fp32 storage, else
        ``round_update_`` with the step's ``seed``; ``compensation`` holds the Kahan buffer's rows
        of the chunk's first rows, if it has any. ``w_op`` is the chunk's ``weight_operand``
        (here its fp32 weights). With ``kept`` (sorted row ids within the chunk, its Kahan rows
        first), ``g`` and ``w_op`` hold those columns and rows only, and only those rows change."""
        upd = torch.addmm(w_op, g.T, e, beta=-lr * weight_decay, alpha=-lr)
        if kept is None:
            if w_c.dtype == torch.float32:
                w_c.add_(upd)
                return
            round_update_(w_c, w_op, upd, seed, row_offset, compensation)
            return
        if w_c.dtype == torch.float32:
            w_c.index_add_(0, kept, upd)
            return
        rows = torch.empty(kept.shape[0], w_c.shape[1], dtype=w_c.dtype, device=w_c.device)
        round_update_(rows, w_op, upd, seed, row_offset, compensation, row_ids=kept + row_offset)
        w_c[kept] = rows

    def topk(
        self, weight: torch.Tensor, embedding: torch.Tensor, k: int, *, chunk_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k logits and storage row ids, merged chunk by chunk into a running top-k."""
        best_vals: torch.Tensor | None = None
        best_ids: torch.Tensor | None = None
        for r0 in range(0, weight.shape[0], chunk_size):
            z = self.logits(weight[r0 : r0 + chunk_size], embedding)
            vals, ids = torch.topk(z, min(k, z.shape[1]), dim=1)
            ids += r0
            if best_vals is not None and best_ids is not None:
                vals = torch.cat([best_vals, vals], dim=1)
                vals, pick = torch.topk(vals, min(k, vals.shape[1]), dim=1)
                ids = torch.gather(torch.cat([best_ids, ids], dim=1), 1, pick)
            best_vals, best_ids = vals, ids
        assert best_vals is not None and best_ids is not None, "the head has no labels"
        return best_vals, best_ids
