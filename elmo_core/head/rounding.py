"""Rounding fp32 into the head's storage types: stochastic (bf16, e4m3) and to nearest.

Stochastic rounding (SR) picks one of the two representable neighbours of ``x``: the one above
with probability ``(x - lo) / (hi - lo)``, so ``E[SR(x)] = x`` and updates far below the spacing
still move the weights on average. Exactly representable values stay exact.

The random bits are counter based, so a step is reproducible on any device and independent of
the chunking or launch shape. Element ``(row, col)`` of a step with seed ``seed`` draws the 32 bits

    x = fmix32((row * 0x9E3779B1 + seed) mod 2^32)
    r = fmix32(x XOR ((col * 0x85EBCA77) mod 2^32))

where ``fmix32`` is murmur3's finaliser (``x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13;
x *= 0xC2B2AE35; x ^= x >> 16``, all mod 2^32). ``row`` is the row of the whole weight matrix.
A head derives each step's ``seed`` from its own seed and step counter with ``step_seed``. The
Triton kernels (``triton_kernels.py``) implement the same bits and rounding with
``KernelConfig.reference_bits`` (by default a cheaper hash, equal in distribution). Here the
arithmetic is on int32 holding the uint32 bit patterns: products and sums wrap mod 2^32 (two's
complement, as torch computes them on CPU and CUDA) and a logical right shift is an arithmetic
one masked to its low bits (checked against numpy's uint64 in the tests).

fp32 -> bf16: add ``r & 0xFFFF`` to the fp32 bit pattern and clear the low 16 bits (an integer
carry moves into the exponent; NaN stays NaN, +-inf and signed zero are kept).

fp32 -> e4m3 (e4m3fn: no inf, max 448, normal for ``|x| >= 2^-6``, subnormal spacing ``2^-9``):
the sign is set aside and the magnitude clamped to 448 (saturation, also for inf). In the normal
range add ``r & 0xFFFFF`` to the magnitude's bit pattern and clear the low 20 bits (3 mantissa
bits remain; a carry moves into the exponent, and 448 + anything < 2^20 stays 448). In the
subnormal range (``|x| < 2^-6``) with ``q = |x| * 512``: ``floor(q) / 512``, plus ``1 / 512``
iff ``u < q - floor(q)`` where ``u = ((r >> 8) + 0.5) * 2^-24`` (fp32 arithmetic). The sign is put
back bitwise (``-0.0`` stays ``-0.0``); NaN stays NaN.

``stochastic_round_`` draws the bits and rounds a matrix block by block (``BLOCK`` elements, a
few hundred KiB that stay in the CPU's cache, each torch op on one core), in place, with int32
buffers reused across blocks: the row part of the hash is computed once per row, the column part
once per column, and each block costs about 20 vectorised passes for bf16, 40 for e4m3 (the
subnormal rule is evaluated for a whole block, and skipped for blocks with no ``|x| < 2^-6``).
NaNs are found by a max reduction per block and put back afterwards. The blocks are shared among
``torch.get_num_threads()`` Python threads (torch's CPU ops release the GIL; each thread has its
own buffers), and since the bits depend only on ``(row, col, seed)`` the result does not depend
on the number of threads. The results are bit-identical to the rules above (tested against a
numpy uint64 implementation).

Kahan buffers (bf16 or e5m2) are rounded to nearest (``round_nearest``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

MASK32 = 0xFFFFFFFF
E4M3_MAX = 448.0
E4M3_MIN_NORMAL = 2.0**-6
BLOCK = 1 << 15
"""Elements per block of ``stochastic_round_`` on the CPU: its int32 buffers stay in cache, and
each op stays below torch's parallel grain (one core: no thread wake-ups for tiny ops)."""
THREAD_BLOCK = 1 << 18
"""Elements per block when several threads round on the CPU: each pool thread runs its torch ops
with one intra-op thread, so a block may exceed the parallel grain; larger blocks mean fewer
Python calls contending for the GIL (1 MiB int32 buffers, within a 2-4 MiB L2)."""
WORKERS: int | None = None
"""Threads rounding the blocks of ``stochastic_round_`` on the CPU when the call does not say;
``None``: ``torch.get_num_threads()``."""
DEVICE_BLOCK = 1 << 24
"""Elements per block on other devices: few launches, bounded temporaries (about 40 bytes per
element)."""


def _i32(value: int) -> int:
    """The int32 with the bit pattern of ``value mod 2^32``."""
    value &= MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _as_i32(ids: torch.Tensor) -> torch.Tensor:
    """Integer ids mod 2^32 as int32 bit patterns."""
    return (ids.to(torch.int64) & MASK32).to(torch.int32)


def _xor_shift_(x: torch.Tensor, k: int, tmp: torch.Tensor) -> None:
    """``x ^= x >> k`` (logical shift of the uint32 patterns) in place; ``tmp`` is scratch."""
    torch.bitwise_right_shift(x, k, out=tmp)
    tmp &= (1 << (32 - k)) - 1
    x ^= tmp


def _fmix32_(x: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finaliser in place on int32 bit patterns; ``tmp``: scratch of x's shape."""
    _xor_shift_(x, 16, tmp)
    x *= _i32(0x85EBCA6B)
    _xor_shift_(x, 13, tmp)
    x *= _i32(0xC2B2AE35)
    _xor_shift_(x, 16, tmp)
    return x


def _row_hash(rows: torch.Tensor, seed: int) -> torch.Tensor:
    """``fmix32(row * 0x9E3779B1 + seed)`` as int32 patterns: the row part of the bits."""
    x = _as_i32(rows) * _i32(0x9E3779B1) + _i32(seed)
    return _fmix32_(x, torch.empty_like(x))


def _col_hash(cols: torch.Tensor) -> torch.Tensor:
    """``col * 0x85EBCA77`` as int32 patterns: the column part of the bits."""
    return _as_i32(cols) * _i32(0x85EBCA77)


def random_bits(rows: torch.Tensor, cols: torch.Tensor, seed: int) -> torch.Tensor:
    """32 random bits (int64 in [0, 2^32)) per element of ``rows`` and ``cols`` broadcast together.

    ``rows``/``cols`` are integer tensors (e.g. ``rows[:, None]``, ``cols[None, :]``); ``seed`` an
    int in [0, 2^32). Integer arithmetic only, so every device gives the same bits.
    """
    x = _row_hash(rows, seed) ^ _col_hash(cols)
    return _fmix32_(x, torch.empty_like(x)).to(torch.int64) & MASK32


def step_seed(seed: int, step: int) -> int:
    """Mix a head's seed and its step counter into the 31-bit seed of one step's random bits."""
    x = (seed * 0x9E3779B1 + step * 0x85EBCA77 + 0x27D4EB2F) & MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    return x & 0x7FFFFFFF


def sr_bf16(x: torch.Tensor, r: torch.Tensor, tmp: torch.Tensor) -> None:
    """Round fp32 ``x`` stochastically to bf16 values in place (kept in fp32) with the random
    bits ``r`` (int32 patterns of x's shape, overwritten; ``tmp``, unused, as for ``sr_e4m3``)."""
    bits = x.view(torch.int32)
    r &= 0xFFFF
    bits += r
    bits &= _i32(0xFFFF0000)


def _e4m3_subnormal_bits(mag: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The subnormal rule on every element of ``mag`` (|x| clamped, fp32) with the bits ``r``, as
    int32 patterns: ``floor(q) / 512`` plus ``1 / 512`` iff ``u < q - floor(q)``. Computed as
    ``(v + 0.5) - (q - floor(q)) * 2^24 < 0`` with ``v = r >> 8`` (both sides scaled by 2^24,
    exactly; the sign of a float difference is exact), read from the difference's sign bit: no
    boolean tensors, which are slow on the CPU. NaN elements give garbage (the caller puts them
    back)."""
    q = mag * 512.0
    # floor(q) for 0 <= q <= 448 * 512 by an int32 round trip: torch.floor wakes the thread pool
    # even for a small tensor, 100x slower on a busy machine
    low = q.to(torch.int32).to(torch.float32)
    frac = q.sub_(low).mul_(16777216.0)
    v = torch.bitwise_right_shift(r, 8).bitwise_and_(0xFFFFFF).to(torch.float32).add_(0.5)
    up = v.sub_(frac).view(torch.int32).bitwise_right_shift_(31)  # -1 (round up) or 0
    return low.sub_(up.to(torch.float32)).mul_(1.0 / 512.0).view(torch.int32)


def sr_e4m3(x: torch.Tensor, r: torch.Tensor, tmp: torch.Tensor) -> None:
    """Round fp32 ``x`` stochastically to e4m3fn values in place (kept in fp32) with the random
    bits ``r`` (int32 patterns of x's shape, overwritten; ``tmp`` int32 scratch): saturating at
    +-448, subnormals below 2^-6 (evaluated only if ``x`` has some), signed zero kept."""
    mag = torch.abs(x, out=tmp.view(torch.float32)).clamp_(max=E4M3_MAX)
    sub = None if float(mag.amin()) >= E4M3_MIN_NORMAL else _e4m3_subnormal_bits(mag, r)
    r &= 0xFFFFF
    r += mag.view(torch.int32)
    r &= _i32(0xFFF00000)
    if sub is not None:  # r = sub where mag < 2^-6: its bit pattern is below 0x3C800000
        small = mag.view(torch.int32).sub(0x3C800000).bitwise_right_shift_(31)
        sub ^= r
        sub &= small
        r ^= sub
    torch.copysign(r.view(torch.float32), x, out=x)


def _round_blocks(
    x: torch.Tensor,
    rounder: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None],
    row_bits: torch.Tensor,
    col_bits: torch.Tensor,
    out: torch.Tensor | None,
    step: int,
    starts: range,
) -> None:
    """Draw the bits and round the blocks of ``x`` (``step`` rows each) that start at the rows
    ``starts``, with int32 buffers of its own reused across these blocks."""
    num_rows, cols = x.shape
    r_buf = torch.empty(min(step, num_rows), cols, dtype=torch.int32, device=x.device)
    tmp_buf = torch.empty_like(r_buf)
    for i0 in starts:
        i1 = min(i0 + step, num_rows)
        block, r, tmp = x[i0:i1], r_buf[: i1 - i0], tmp_buf[: i1 - i0]
        torch.bitwise_xor(row_bits[i0:i1], col_bits, out=r)
        _fmix32_(r, tmp)
        kept = None
        if math.isnan(float(block.amax())):  # a cheap test (no mask), then the exact one
            nan = torch.isnan(block)
            # as int32: a single float kept would be put back through a scalar fill, which
            # quiets a signalling NaN (0x7F800001 -> 0x7FC00001)
            kept = block.view(torch.int32)[nan]
        rounder(block, r, tmp)
        if kept is not None:
            block.view(torch.int32)[nan] = kept
        if out is not None:
            out[i0:i1].copy_(block)


_POOL: ThreadPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def _one_intraop_thread(barrier: threading.Barrier) -> None:
    """Give the calling pool thread one torch intra-op thread (OpenMP's setting is per thread),
    then wait until every thread of the pool has done so (one call per thread)."""
    torch.set_num_threads(1)
    torch.get_num_threads()  # fixes this thread's lazy initialisation at 1
    barrier.wait()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The module's thread pool with at least ``workers`` threads, each running torch ops with one
    intra-op thread (re-created after a fork, whose child has none of the parent's threads)."""
    global _POOL, _POOL_WORKERS, _POOL_PID
    with _POOL_LOCK:
        pid = os.getpid()
        if _POOL is None or workers > _POOL_WORKERS or pid != _POOL_PID:
            if _POOL is not None and pid == _POOL_PID:
                _POOL.shutdown(wait=False)
            pool = ThreadPoolExecutor(workers, thread_name_prefix="elmo-rounding")
            threads = torch.get_num_threads()
            barrier = threading.Barrier(workers)
            try:
                for future in [pool.submit(_one_intraop_thread, barrier) for _ in range(workers)]:
                    future.result()
            finally:  # torch.set_num_threads also sets the default of threads yet to start
                torch.set_num_threads(threads)
            _POOL, _POOL_WORKERS, _POOL_PID = pool, workers, pid
        return _POOL


def stochastic_round_(
    x: torch.Tensor,
    dtype: torch.dtype,
    seed: int,
    row_offset: int = 0,
    out: torch.Tensor | None = None,
    workers: int | None = None,
    row_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Round the fp32 matrix ``x`` (rows x cols, contiguous rows) stochastically onto ``dtype``'s
    grid (bf16 or e4m3fn) in place, kept in fp32; element ``(i, j)`` draws the bits of
    ``(row_offset + i, j)``, or of ``(row_ids[i], j)`` where ``row_ids`` (int64, one per row of
    ``x``) is given: rows gathered from a larger matrix draw that matrix's bits. NaN stays NaN
    (the same bits). ``out`` (x's shape, any dtype), if given, also receives the result, block
    by block while it is in cache. Blocks of ``BLOCK`` elements on the CPU, ``DEVICE_BLOCK`` on
    other devices. Returns ``x``.

    On the CPU, with ``workers`` > 1 (default ``WORKERS``, else ``torch.get_num_threads()``) and
    more than one block of ``THREAD_BLOCK`` elements, the blocks are shared among ``workers``
    threads of a module-level pool (the caller waits): thread ``k`` of ``n`` rounds blocks
    ``k, k + n, ...`` with buffers of its own and one torch intra-op thread. Otherwise the caller
    rounds blocks of ``BLOCK`` elements. The bits depend only on ``(row, col, seed)``, so the
    result does not depend on ``workers``."""
    if dtype == torch.bfloat16:
        rounder = sr_bf16
    elif dtype == torch.float8_e4m3fn:
        rounder = sr_e4m3
    else:
        raise ValueError(f"stochastic rounding targets bfloat16 or float8_e4m3fn, got {dtype}")
    num_rows, cols = x.shape
    rows = (
        torch.arange(row_offset, row_offset + num_rows, device=x.device)
        if row_ids is None
        else row_ids
    )
    row_bits = _row_hash(rows, seed)[:, None]
    col_bits = _col_hash(torch.arange(cols, device=x.device))
    if x.device.type != "cpu":
        step = max(1, DEVICE_BLOCK // max(1, cols))
        _round_blocks(x, rounder, row_bits, col_bits, out, step, range(0, num_rows, step))
        return x
    if workers is None:
        workers = WORKERS or torch.get_num_threads()
    step = max(1, THREAD_BLOCK // max(1, cols))
    workers = max(1, min(workers, -(-num_rows // step)))
    if workers == 1:
        step = max(1, BLOCK // max(1, cols))
        _round_blocks(x, rounder, row_bits, col_bits, out, step, range(0, num_rows, step))
        return x
    pool = _pool(workers)
    stride = step * workers
    futures = [
        pool.submit(_round_blocks, x, rounder, row_bits, col_bits, out, step, starts)
        for starts in (range(k * step, num_rows, stride) for k in range(workers))
    ]
    for future in futures:
        future.result()
    return x


def stochastic_round(
    x: torch.Tensor, dtype: torch.dtype, seed: int, row_offset: int = 0
) -> torch.Tensor:
    """Round fp32 ``x`` stochastically into ``dtype``; element ``(i, j)`` of ``x`` viewed as
    ``rows x cols`` (``cols`` = last dimension) draws the bits of ``(row_offset + i, j)``."""
    cols = x.shape[-1] if x.dim() else 1
    flat = x.to(torch.float32).reshape(-1, cols).clone()
    stochastic_round_(flat, dtype, seed, row_offset)
    return flat.to(dtype).reshape(x.shape)


def round_nearest(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` rounded to nearest (ties to even) into ``dtype``; e4m3 saturates at +-448, e5m2 at
    its largest finite value (no overflow to inf or NaN); NaN stays NaN."""
    x = x.to(torch.float32)
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        big = torch.finfo(dtype).max
        x = torch.where(torch.isnan(x), x, x.clamp(-big, big))
    return x.to(dtype)
