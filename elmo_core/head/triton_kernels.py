"""Triton kernels for the low-precision XMC head on CUDA (fp8 e4m3 or bf16 weight storage).

One training step (DESIGN.md section 1) walks the labels in chunks of ``C`` rows and launches two
kernels per chunk; the only chunk-sized transient is the ``C x B`` bf16 buffer of ``G``:

1. ``_logits_kernel``, one program per tile of ``BLOCK_L`` labels: ``Z = W_tile E^T`` with fp32
   accumulation (the storage type upcast to bf16 in registers, or, with ``native_fp8``, fp8
   operands straight into the tensor cores and ``E`` scaled per row into e4m3), then
   ``G = sigmoid(Z) - Y``. ``Y`` comes from the positive pairs sorted by label: ``tile_ptr[t]`` ..
   ``tile_ptr[t + 1]`` are the positives of global tile ``t``, so a tile without positives pays one
   comparison and no loop.
2. ``_update_kernel``, a persistent split-K grid of ``(d-blocks, S splits)``: a program owns one
   ``BLOCK_D`` column block and every ``S``-th label tile of the chunk. Per tile it reads
   ``W[:, block]`` once, accumulates ``dE += G^T W`` (pre-update weights) in fp32 registers across
   all its tiles, computes ``W - lr (G E + wd W)`` in fp32 registers and writes it back with
   stochastic rounding (Kahan-compensated for the first ``n_kahan`` rows). Each program adds its
   ``B x BLOCK_D`` partial into its own slot of an ``S x B x d`` fp32 buffer, summed once per step.

The weight gradient never exists in memory; ``W`` is read twice and written once per step. All
offsets are 64-bit (100M labels x 768 overflows 32-bit indexing).

Stochastic rounding (``elmo_core.head.rounding``): unbiased, only the two neighbouring
representable values, probability proportional to distance; e4m3 subnormals (spacing 2^-9),
saturation at +-448, NaN kept, signed zero kept, exponent carry by the integer add. The random bits
are counter based (a hash of label row, column and step seed), so a step is reproducible and
independent of the launch shape. With ``KernelConfig.reference_bits`` the bits and the rounding
are ``rounding.py``'s exactly (bit-identical to the reference); without it a cheaper hash and a
one-pass e4m3 rounding are used, equal in distribution (docs/gpu.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from elmo_core.head.limits import MAX_BATCH, TRITON_CHUNK

BLOCK_L = 128
"""Labels per tile in both kernels; chunk sizes are multiples of it."""


@triton.jit
def _fmix32(x):
    """murmur3's 32-bit finaliser: a cheap bijective avalanche on uint32."""
    x ^= x >> 16
    x *= 0x85EBCA6B
    x ^= x >> 13
    x *= 0xC2B2AE35
    x ^= x >> 16
    return x


@triton.jit
def _random_bits_ref(rows, cols, seed):
    """``rounding.random_bits`` exactly: two murmur3 finalisers per element."""
    x = _fmix32(rows.to(tl.uint32) * 0x9E3779B1 + seed.to(tl.uint32))
    return _fmix32(x ^ (cols.to(tl.uint32) * 0x85EBCA77))


@triton.jit
def _random_bits(rows, cols, seed):
    """32 random bits per (row, col) element for the step's ``seed`` (uint32).

    The row and column hashes are computed on the broadcast [rows, 1] and [1, cols] shapes (once
    per row or column of a tile); per element one xor, one multiply and one xorshift remain.
    """
    xr = _fmix32(rows.to(tl.uint32) * 0x9E3779B1 + seed.to(tl.uint32))
    xc = _fmix32(cols.to(tl.uint32) * 0x85EBCA77 + 0x27D4EB2F)
    h = (xr ^ xc) * 0x85EBCA6B
    return h ^ (h >> 13)


@triton.jit
def _sr_bf16(x, r):
    """fp32 -> bf16-representable fp32, stochastically (add 16 random bits, truncate)."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = ((bits + (r & 0xFFFF)) & 0xFFFF0000).to(tl.float32, bitcast=True)
    return tl.where(x != x, x, rounded)


@triton.jit
def _sr_e4m3(x, r):
    """fp32 -> e4m3-representable fp32, stochastically.

    The magnitude is clamped to 448 (saturation). Normal range (|x| >= 2^-6): add 20 random bits
    to its bit pattern and clear them (a carry moves into the exponent). Subnormal range: the same
    on ``|x| + 2^-6``, whose 3-bit mantissa steps are e4m3's subnormal spacing 2^-9, then
    ``2^-6`` is subtracted again (exact); the fp32 sum rounds away at most 2^-30, 2^-21 of a
    spacing. The sign is put back bitwise (-0.0 stays -0.0); NaN stays NaN.
    """
    bits = x.to(tl.uint32, bitcast=True)
    mag = tl.minimum((bits & 0x7FFFFFFF).to(tl.float32, bitcast=True), 448.0)
    off = tl.where(mag < 0.015625, 0.015625, 0.0)
    y = (mag + off).to(tl.uint32, bitcast=True)
    res = ((y + (r & 0xFFFFF)) & 0xFFF00000).to(tl.float32, bitcast=True) - off
    out = (res.to(tl.uint32, bitcast=True) | (bits & 0x80000000)).to(tl.float32, bitcast=True)
    return tl.where(x != x, x, out)


@triton.jit
def _sr_e4m3_ref(x, r):
    """``rounding.sr_e4m3`` exactly: the subnormal range by floor and a 24-bit uniform."""
    bits = x.to(tl.uint32, bitcast=True)
    mag = tl.minimum((bits & 0x7FFFFFFF).to(tl.float32, bitcast=True), 448.0)
    normal = ((mag.to(tl.uint32, bitcast=True) + (r & 0xFFFFF)) & 0xFFF00000).to(
        tl.float32, bitcast=True
    )
    q = mag * 512.0
    low = tl.floor(q)
    u = ((r >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    sub = (low + tl.where(u < q - low, 1.0, 0.0)) * (1.0 / 512.0)
    res = tl.where(mag < 0.015625, sub, normal)
    out = (res.to(tl.uint32, bitcast=True) | (bits & 0x80000000)).to(tl.float32, bitcast=True)
    return tl.where(x != x, x, out)


@triton.jit
def _bits(rows, cols, seed, REF_BITS: tl.constexpr):
    """The step's random bits: ``rounding.random_bits`` exactly, or the cheaper hash."""
    return _random_bits_ref(rows, cols, seed) if REF_BITS else _random_bits(rows, cols, seed)


@triton.jit
def _round_store(ptr, x, r, mask, FP8: tl.constexpr, REF_BITS: tl.constexpr):
    """Store ``x`` stochastically rounded into the storage type; return the rounded fp32 value."""
    if FP8 and REF_BITS:
        new = _sr_e4m3_ref(x, r)
        tl.store(ptr, new.to(tl.float8e4nv), mask=mask)
    elif FP8:
        new = _sr_e4m3(x, r)
        tl.store(ptr, new.to(tl.float8e4nv), mask=mask)
    else:
        new = _sr_bf16(x, r)
        tl.store(ptr, new.to(tl.bfloat16), mask=mask)
    return new


@triton.jit(do_not_specialize=["seed"])
def _sr_kernel(
    x_ptr, out_ptr, n, cols, seed, FP8: tl.constexpr, REF_BITS: tl.constexpr, BLOCK: tl.constexpr
):
    """Stochastically round flat fp32 data (rows of ``cols``) into the storage type."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    r = _bits(offs // cols, offs % cols, seed, REF_BITS)
    _round_store(out_ptr + offs, x, r, mask, FP8, REF_BITS)


@triton.jit(do_not_specialize=["row0", "n_rows"])
def _logits_kernel(
    w_ptr,
    e_ptr,
    e_scale_ptr,
    out_ptr,
    tile_ptr,
    pos_rows_ptr,
    pos_cols_ptr,
    row0,
    n_rows,
    B,
    D,
    stride_ob,
    stride_ol,
    GRAD: tl.constexpr,
    NATIVE_FP8: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Per label tile: ``Z = W E^T``; GRAD stores ``sigmoid(Z) - Y`` (bf16), else ``Z`` (fp32)."""
    pid = tl.program_id(0)
    start = pid * BLOCK_L  # first label of the tile within the chunk
    ar = tl.arange(0, BLOCK_L)
    lmask = start + ar < n_rows
    lab = row0 + start + ar
    bb = tl.arange(0, BLOCK_B)
    bidx = tl.program_id(1) * BLOCK_B + bb
    bmask = bidx < B
    ak = tl.arange(0, BLOCK_K)
    # 64-bit scalar bases, 32-bit offsets inside the tile: fewer registers than 64-bit pointers
    w_base = w_ptr + (row0 + start).to(tl.int64) * D
    w_offs = ar[:, None] * D + ak[None, :]
    e_offs = bidx[None, :] * D + ak[:, None]
    acc = tl.zeros((BLOCK_L, BLOCK_B), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        kmask = k0 + ak < D
        w = tl.load(w_base + (w_offs + k0), mask=lmask[:, None] & kmask[None, :], other=0.0)
        et = tl.load(e_ptr + (e_offs + k0), mask=kmask[:, None] & bmask[None, :], other=0.0)
        acc = tl.dot(w if NATIVE_FP8 else w.to(tl.bfloat16), et, acc)
    if NATIVE_FP8:
        acc = acc * tl.load(e_scale_ptr + bidx, mask=bmask, other=1.0)[None, :]
    omask = lmask[:, None] & bmask[None, :]
    o_base = (
        out_ptr
        + start.to(tl.int64) * stride_ol
        + (tl.program_id(1) * BLOCK_B).to(tl.int64) * stride_ob
    )
    optr = o_base + (ar[:, None] * stride_ol + bb[None, :] * stride_ob)
    if GRAD:
        tile = row0 // BLOCK_L + pid
        p0 = tl.load(tile_ptr + tile)
        p1 = tl.load(tile_ptr + tile + 1)
        g = 1.0 / (1.0 + tl.exp(-acc))
        for p in range(p0, p1):
            c = tl.load(pos_cols_ptr + p)
            r = tl.load(pos_rows_ptr + p)
            g = tl.where((lab[:, None] == c) & (bidx[None, :] == r), g - 1.0, g)
        tl.store(optr, g.to(tl.bfloat16), mask=omask)
    else:
        tl.store(optr, acc, mask=omask)


@triton.jit(do_not_specialize=["row0", "n_rows", "n_kahan", "seed"])
def _update_kernel(
    w_ptr,
    g_ptr,
    e_ptr,
    part_ptr,
    comp_ptr,
    row0,
    n_rows,
    B,
    D,
    n_kahan,
    lr,
    wd,
    seed,
    FP8: tl.constexpr,
    HAS_KAHAN: tl.constexpr,
    COMP_E5M2: tl.constexpr,
    REF_BITS: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """dE partial += G^T W; W <- SR(W - lr (G E + wd W)), per column block, split over labels."""
    pid_d = tl.program_id(0)
    pid_s = tl.program_id(1)
    n_split = tl.num_programs(1)
    ar = tl.arange(0, BLOCK_L)
    ad = tl.arange(0, BLOCK_D)
    dd = pid_d * BLOCK_D + ad
    dmask = dd < D
    bidx = tl.arange(0, BLOCK_B)
    bmask = bidx < B
    e_blk = tl.load(
        e_ptr + (bidx[:, None] * D + dd[None, :]), mask=bmask[:, None] & dmask[None, :], other=0.0
    )
    acc_de = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.float32)
    n_tiles = tl.cdiv(n_rows, BLOCK_L)
    w_chunk = w_ptr + row0.to(tl.int64) * D  # 64-bit scalar base; 32-bit offsets in the chunk
    c_chunk = comp_ptr + row0.to(tl.int64) * D
    for t in range(pid_s, n_tiles, n_split):
        start = t * BLOCK_L
        lmask = start + ar < n_rows
        lab = row0 + start + ar
        g = tl.load(
            g_ptr + ((start + ar)[:, None] * B + bidx[None, :]),
            mask=lmask[:, None] & bmask[None, :],
            other=0.0,
        )
        wmask = lmask[:, None] & dmask[None, :]
        offs = (start + ar)[:, None] * D + dd[None, :]
        wp = w_chunk + offs
        w = tl.load(wp, mask=wmask, other=0.0)
        wf = w.to(tl.float32)
        acc_de = tl.dot(tl.trans(g), wf.to(tl.bfloat16), acc_de)
        step = -lr * (tl.dot(g, e_blk) + wd * wf)
        r = _bits(lab[:, None], dd[None, :], seed, REF_BITS)
        if HAS_KAHAN and row0 + start < n_kahan:
            cmask = wmask & (lab[:, None] < n_kahan)
            cp = c_chunk + offs
            y = step - tl.load(cp, mask=cmask, other=0.0).to(tl.float32)
            new = _round_store(wp, wf + y, r, wmask, FP8, REF_BITS)
            comp_new = tl.where(cmask, (new - wf) - y, 0.0)
            if COMP_E5M2:
                tl.store(cp, comp_new.to(tl.float8e5), mask=cmask)
            else:
                tl.store(cp, comp_new.to(tl.bfloat16), mask=cmask)
        else:
            _round_store(wp, wf + step, r, wmask, FP8, REF_BITS)
    pmask = bmask[:, None] & dmask[None, :]
    pp = part_ptr + pid_s.to(tl.int64) * B * D + (bidx[:, None] * D + dd[None, :])
    tl.store(pp, tl.load(pp, mask=pmask, other=0.0) + acc_de, mask=pmask)


@dataclass(frozen=True)
class KernelConfig:
    """Launch parameters of the two step kernels (defaults tuned on the H200, see docs/gpu.md)."""

    chunk: int = TRITON_CHUNK
    """Labels per chunk: the bf16 ``G`` buffer is ``chunk x B`` (32 MiB at B=128)."""
    block_k: int = 64
    logits_warps: int = 8
    logits_stages: int = 3
    update_block_l: int = 64
    """Labels per tile in the update kernel (a divisor of 128: 32, 64 or 128)."""
    block_d: int = 64
    update_warps: int = 8
    update_stages: int = 3
    programs_per_sm: int = 1
    reference_bits: bool = False
    """Draw the random bits and round e4m3 subnormals exactly as ``rounding.py`` (bit-identical to
    the reference); False: a cheaper hash and one-pass e4m3 rounding, equal in distribution."""
    topk_native_fp8: bool = False
    """fp8 weights in ``topk``: scan with e4m3 operands, then rescore the candidates exactly."""
    native_fp8: bool = False
    """fp8 weights: e4m3 operands into the tensor cores for the logits (E scaled per row)."""


DEFAULT_CONFIG = KernelConfig()
"""Largest batch the fused update kernel holds in registers (the head falls back beyond it)."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pow2(n: int, lo: int) -> int:
    return max(lo, triton.next_power_of_2(n))


@functools.lru_cache(maxsize=8)
def _num_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _check_weight(weight: torch.Tensor) -> bool:
    if not weight.is_cuda or weight.dim() != 2 or not weight.is_contiguous():
        raise ValueError("weight must be a contiguous 2-D CUDA tensor")
    if weight.dtype == torch.float8_e4m3fn:
        return True
    if weight.dtype == torch.bfloat16:
        return False
    raise ValueError(f"weight dtype must be float8_e4m3fn or bfloat16, got {weight.dtype}")


def _operands(
    weight: torch.Tensor, embedding: torch.Tensor, native: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits kernel's embedding operand (bf16, or e4m3 scaled per row) and the scales."""
    if embedding.dim() != 2 or embedding.shape[1] != weight.shape[1]:
        raise ValueError(f"embedding must be B x {weight.shape[1]}, got {tuple(embedding.shape)}")
    e_bf16 = embedding.detach().to(device=weight.device, dtype=torch.bfloat16).contiguous()
    if not native:
        return e_bf16, e_bf16, torch.ones(1, device=weight.device)
    e32 = embedding.detach().to(device=weight.device, dtype=torch.float32)
    scale = (e32.abs().amax(dim=1) / 448.0).clamp_min(1e-30)
    e_fp8 = (e32 / scale[:, None]).to(torch.float8_e4m3fn).contiguous()
    return e_fp8, e_bf16, scale.contiguous()


def _launch_logits(
    weight: torch.Tensor,
    e_op: torch.Tensor,
    e_scale: torch.Tensor,
    out: torch.Tensor,
    row0: int,
    n: int,
    stride_ob: int,
    stride_ol: int,
    cfg: KernelConfig,
    positives: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
) -> None:
    batch, dim = e_op.shape
    native = e_op.dtype == torch.float8_e4m3fn
    block_b = min(128, _pow2(batch, 16))
    tile_ptr, pos_rows, pos_cols = positives if positives is not None else (out, out, out)
    grid = (_cdiv(n, BLOCK_L), _cdiv(batch, block_b))
    _logits_kernel[grid](
        weight,
        e_op,
        e_scale,
        out,
        tile_ptr,
        pos_rows,
        pos_cols,
        row0,
        n,
        batch,
        dim,
        stride_ob,
        stride_ol,
        GRAD=positives is not None,
        NATIVE_FP8=native,
        BLOCK_L=BLOCK_L,
        BLOCK_B=block_b,
        BLOCK_K=cfg.block_k * (2 if native else 1),
        num_warps=cfg.logits_warps if block_b >= 64 else 4,
        num_stages=cfg.logits_stages,
    )


def _sorted_positives(
    rows: torch.Tensor, cols: torch.Tensor, num_labels: int, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positive pairs sorted by label, and per label tile the [start, end) range of them.

    No host synchronisation: the pairs must lie in range (``XMCHead`` checks them); repeated
    pairs are kept but neutralised (batch row -1)."""
    rows = rows.to(device=device, dtype=torch.int64).reshape(-1)
    cols = cols.to(device=device, dtype=torch.int64).reshape(-1)
    if rows.numel() != cols.numel():
        raise ValueError(f"rows and cols differ in length: {rows.numel()} != {cols.numel()}")
    keys = torch.sort(cols * batch + rows).values  # by label, then batch row
    cols_sorted = keys // batch
    rows_sorted = keys % batch
    dup = torch.zeros_like(keys, dtype=torch.bool)
    dup[1:] = keys[1:] == keys[:-1]
    rows_sorted = torch.where(
        dup, -1, rows_sorted
    )  # a repeated pair counts once: row -1 matches none
    bounds = torch.arange(_cdiv(num_labels, BLOCK_L) + 1, device=device) * BLOCK_L
    tile_ptr = torch.searchsorted(cols_sorted, bounds)
    return tile_ptr, rows_sorted.contiguous(), cols_sorted.contiguous()


class StepPlan:
    """The launches of one head step on fixed inputs: ``head_step`` runs them all; a benchmark can
    time the two kernels apart (``logits_chunk`` then ``update_chunk`` for each of ``chunks``)."""

    def __init__(
        self,
        weight: torch.Tensor,
        embedding: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        lr: float,
        *,
        seed: int,
        weight_decay: float = 0.0,
        compensation: torch.Tensor | None = None,
        config: KernelConfig = DEFAULT_CONFIG,
    ) -> None:
        self.fp8 = _check_weight(weight)
        num_labels, dim = weight.shape
        batch = embedding.shape[0]
        if batch > MAX_BATCH:
            raise ValueError(f"batch {batch} exceeds the Triton step's limit of {MAX_BATCH}")
        self.weight, self.lr, self.wd, self.seed, self.config = (
            weight,
            float(lr),
            float(weight_decay),
            int(seed),
            config,
        )
        self.e_op, self.e_bf16, self.e_scale = _operands(
            weight, embedding, config.native_fp8 and self.fp8
        )
        self.positives = _sorted_positives(rows, cols, num_labels, batch, weight.device)
        self.n_kahan, self.comp, self.comp_e5m2 = 0, weight, False
        if compensation is not None and compensation.shape[0] > 0:
            if compensation.shape[1] != dim or not compensation.is_contiguous():
                raise ValueError("compensation must be a contiguous K x d tensor")
            if compensation.dtype not in (torch.bfloat16, torch.float8_e5m2):
                raise ValueError(
                    f"compensation dtype must be bf16 or e5m2, got {compensation.dtype}"
                )
            self.n_kahan, self.comp = compensation.shape[0], compensation
            self.comp_e5m2 = compensation.dtype == torch.float8_e5m2
        chunk = min(_cdiv(config.chunk, BLOCK_L), _cdiv(num_labels, BLOCK_L)) * BLOCK_L
        self.chunks = [(r0, min(chunk, num_labels - r0)) for r0 in range(0, num_labels, chunk)]
        self.block_b = _pow2(batch, 16)
        self.n_dblocks = _cdiv(dim, config.block_d)
        if BLOCK_L % config.update_block_l or chunk * max(dim, batch) >= 2**31:
            raise ValueError(f"bad kernel config {config} for {num_labels} x {dim}")
        splits = _num_sms(weight.device.index or 0) * config.programs_per_sm // self.n_dblocks
        self.splits = max(1, min(splits, _cdiv(chunk, config.update_block_l)))
        self.g = torch.empty(chunk, batch, device=weight.device, dtype=torch.bfloat16)
        self.part = torch.zeros(self.splits, batch, dim, device=weight.device, dtype=torch.float32)

    def logits_chunk(self, row0: int, n: int) -> None:
        """G = sigmoid(W E^T) - Y for labels ``row0 .. row0+n`` into the chunk buffer."""
        batch = self.e_op.shape[0]
        _launch_logits(
            self.weight,
            self.e_op,
            self.e_scale,
            self.g,
            row0,
            n,
            1,
            batch,
            self.config,
            self.positives,
        )

    def update_chunk(self, row0: int, n: int) -> None:
        """dE partial += G^T W and the rounded weight update for labels ``row0 .. row0+n``."""
        batch, dim = self.e_bf16.shape
        _update_kernel[(self.n_dblocks, self.splits)](
            self.weight,
            self.g,
            self.e_bf16,
            self.part,
            self.comp,
            row0,
            n,
            batch,
            dim,
            self.n_kahan,
            self.lr,
            self.wd,
            self.seed,
            FP8=self.fp8,
            HAS_KAHAN=row0 < self.n_kahan,
            COMP_E5M2=self.comp_e5m2,
            REF_BITS=self.config.reference_bits,
            BLOCK_L=self.config.update_block_l,
            BLOCK_B=self.block_b,
            BLOCK_D=self.config.block_d,
            num_warps=self.config.update_warps,
            num_stages=self.config.update_stages,
        )

    def run(self) -> torch.Tensor:
        """Every chunk's two kernels, then the input gradient ``G^T W`` (B x d fp32)."""
        for row0, n in self.chunks:
            self.logits_chunk(row0, n)
            self.update_chunk(row0, n)
        return self.part.sum(dim=0)


def head_step(
    weight: torch.Tensor,
    embedding: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    lr: float,
    *,
    seed: int,
    weight_decay: float = 0.0,
    compensation: torch.Tensor | None = None,
    config: KernelConfig = DEFAULT_CONFIG,
) -> torch.Tensor:
    """One fused training step of the head, in place on ``weight``; returns ``G^T W`` (B x d fp32).

    ``weight`` (L x d, e4m3 or bf16, CUDA, contiguous) is updated with stochastic rounding;
    ``compensation`` (K x d, bf16 or e5m2), if given, is the Kahan buffer of rows ``0 .. K-1``.
    ``rows``/``cols`` are the positive pairs (batch row, label), which must lie in range (not
    checked here, to keep the step free of host synchronisation). ``seed`` is the step's seed
    (see ``rounding.step_seed``): the same seed and inputs give the same weights.
    """
    return StepPlan(
        weight,
        embedding,
        rows,
        cols,
        lr,
        seed=seed,
        weight_decay=weight_decay,
        compensation=compensation,
        config=config,
    ).run()


def logits(
    weight: torch.Tensor,
    embedding: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    config: KernelConfig = DEFAULT_CONFIG,
) -> torch.Tensor:
    """All logits ``E W^T`` (B x L fp32, written into ``out`` if given); it holds B x L, so it is
    for tests and the loss of small heads, not for scoring (``topk``)."""
    fp8 = _check_weight(weight)
    e_op, _, e_scale = _operands(weight, embedding, config.native_fp8 and fp8)
    shape = (e_op.shape[0], weight.shape[0])
    if shape[0] * shape[1] >= 2**31:
        raise ValueError(f"logits of shape {shape} are too large to hold; use topk")
    if out is None:
        out = torch.empty(shape, device=weight.device, dtype=torch.float32)
    elif out.shape != shape or out.dtype != torch.float32 or out.stride(1) != 1:
        raise ValueError(f"out must be a row-major float32 tensor of shape {shape}")
    _launch_logits(weight, e_op, e_scale, out, 0, weight.shape[0], out.stride(0), 1, config, None)
    return out


RESCORE = 4
"""Candidates per wanted label that the native-fp8 top-k rescores exactly."""


def _chunk_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k along dim 1 of a B x n score block, through the label tiles' maxima: the k
    best labels lie in the k tiles with the largest maxima, so only those tiles (and the ragged
    tail) are sorted instead of all n scores."""
    batch, n = scores.shape
    tiles = n // BLOCK_L
    if tiles <= 4 * k:
        return torch.topk(scores, min(k, n), dim=1)
    body = scores[:, : tiles * BLOCK_L].unflatten(1, (tiles, BLOCK_L))
    _, best_tiles = torch.topk(body.amax(dim=2), k, dim=1)
    lanes = torch.arange(BLOCK_L, device=scores.device)
    idx = (best_tiles[:, :, None] * BLOCK_L + lanes).reshape(batch, -1)
    tail = torch.arange(tiles * BLOCK_L, n, device=scores.device).expand(batch, -1)
    idx = torch.cat([idx, tail], dim=1)
    vals, pick = torch.topk(torch.gather(scores, 1, idx), k, dim=1)
    return vals, torch.gather(idx, 1, pick)


def _merge(
    best: tuple[torch.Tensor, torch.Tensor] | None, vals: torch.Tensor, ids: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The running top-k merged with a chunk's (values, ids)."""
    if best is None:
        return vals, ids
    both = torch.cat([best[0], vals], dim=1)
    vals, pick = torch.topk(both, min(k, both.shape[1]), dim=1)
    return vals, torch.gather(torch.cat([best[1], ids], dim=1), 1, pick)


def topk(
    weight: torch.Tensor,
    embedding: torch.Tensor,
    k: int,
    *,
    max_scores_bytes: int = 64 << 20,
    config: KernelConfig = DEFAULT_CONFIG,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k raw logits and label ids per query, scoring chunk by chunk (at most
    ``max_scores_bytes`` of scores held) and merging into a running top-k. With
    ``topk_native_fp8`` (fp8 weights) the scan uses e4m3 operands and keeps
    ``RESCORE * k`` candidates whose logits are then recomputed exactly (bf16 embedding): exact
    scores, and the exact top-k unless e4m3 error moves a true top-k label below them."""
    fp8 = _check_weight(weight)
    num_labels = weight.shape[0]
    if not 1 <= k <= num_labels:
        raise ValueError(f"k must lie in [1, {num_labels}], got {k}")
    native = config.topk_native_fp8 and fp8
    e_op, e_bf16, e_scale = _operands(weight, embedding, native)
    batch = e_op.shape[0]
    want = min(num_labels, RESCORE * k) if native else k
    chunk = max(BLOCK_L, max_scores_bytes // (4 * batch) // BLOCK_L * BLOCK_L)
    chunk = min(chunk, _cdiv(num_labels, BLOCK_L) * BLOCK_L)
    scores = torch.empty(batch, chunk, device=weight.device, dtype=torch.float32)
    best: tuple[torch.Tensor, torch.Tensor] | None = None
    for row0 in range(0, num_labels, chunk):
        n = min(chunk, num_labels - row0)
        _launch_logits(weight, e_op, e_scale, scores, row0, n, chunk, 1, config, None)
        vals, ids = _chunk_topk(scores[:, :n], want)
        best = _merge(best, vals, ids + row0, want)
    assert best is not None
    if not native:
        return best
    ids = best[1]
    rows = weight.view(torch.uint8)[ids.reshape(-1)].view(weight.dtype).to(torch.float32)
    exact = (rows.view(batch, want, -1) * e_bf16.to(torch.float32)[:, None, :]).sum(dim=2)
    vals, pick = torch.topk(exact, k, dim=1)
    return vals, torch.gather(ids, 1, pick)


def stochastic_round(
    x: torch.Tensor, dtype: torch.dtype, seed: int, *, config: KernelConfig = DEFAULT_CONFIG
) -> torch.Tensor:
    """Round an fp32 CUDA tensor stochastically into ``dtype`` (e4m3 or bf16) with the step
    kernel's bits: element ``i`` of a ``rows x cols`` view draws the bits of (row, col)."""
    if dtype not in (torch.float8_e4m3fn, torch.bfloat16):
        raise ValueError(f"dtype must be float8_e4m3fn or bfloat16, got {dtype}")
    x = x.to(torch.float32).contiguous()
    out = torch.empty(x.shape, device=x.device, dtype=dtype)
    cols = x.shape[-1] if x.dim() else 1
    block = 1024
    _sr_kernel[(_cdiv(x.numel(), block),)](
        x,
        out,
        x.numel(),
        cols,
        seed,
        FP8=dtype == torch.float8_e4m3fn,
        REF_BITS=config.reference_bits,
        BLOCK=block,
    )
    return out
