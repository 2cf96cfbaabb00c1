"""Scalar helpers for numba CPU kernels on float bit patterns (fp32, bf16), and their decorator.

Shared by the head's fused step (``head/cpu_kernels.py``) and the row-sparse AdamW
(``training/row_sparse_kernels.py``). Bit patterns are held in int64 (a uint32 pattern is
``0 .. 2^32 - 1``), so that numba's integer typing never mixes signed and unsigned operands.

- ``f32_bits`` / ``bits_f32``: bit casts between fp32 and its pattern (LLVM ``bitcast``);
- ``fma32``: ``a * b + c`` rounded once (``llvm.fma.f32``), which is what torch's vectorised CPU
  kernels compute for ``x.add_(y, alpha=a)`` (``vec::fmadd``); the kernels use it where the torch
  code they replace did, so that they give the same bits;
- ``bf16_f32``: a bf16 pattern (uint16) as fp32, exactly (the top 16 bits of the fp32);
- ``f32_bf16``: fp32 -> bf16 rounded to nearest, ties to even, as torch's vectorised x86
  conversion (``.to(torch.bfloat16)``) does: ``(bits + 0x7FFF + lsb) >> 16``, which also carries
  the largest finite values to inf; every NaN becomes ``0xFFFF``.

``kernel`` compiles a function with ``numba.njit(parallel=True, cache=True, nogil=True)`` (no
fastmath: the kernels must give torch's bits). The compiled code is cached on disk (numba's
``__pycache__`` next to the module, else the user's cache directory, or ``NUMBA_CACHE_DIR``);
where no cache directory is writable it compiles without a cache, once per process.
``use_torch_threads`` makes the calling thread's kernels use as many threads as torch does
(``torch.set_num_threads``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

MASK32 = 0xFFFFFFFF


def _compiled(fn: Callable[..., None], parallel: bool) -> Callable[..., None]:
    """``fn`` compiled by numba without the GIL, cached on disk where a cache directory is
    writable."""
    try:
        return njit(parallel=parallel, cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(parallel=parallel, nogil=True)(fn)


def kernel(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` compiled by numba, parallel (``prange``), cached on disk where a cache directory is
    writable, without the GIL."""
    return _compiled(fn, parallel=True)


def serial_kernel(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` compiled by numba on the calling thread only (no ``prange``: safe in a process
    forked after numba's thread pool started), cached like ``kernel``, without the GIL."""
    return _compiled(fn, parallel=False)


def use_torch_threads() -> None:
    """Run this thread's next kernels on ``torch.get_num_threads()`` threads (at most numba's
    ``NUMBA_NUM_THREADS``, the number of cores by default). The first call starts numba's thread
    pool, whose OpenMP layer sets the calling thread's OpenMP thread count, which is torch's: it
    is put back."""
    threads = torch.get_num_threads()
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at numba's import
    numba.set_num_threads(max(1, min(threads, most)))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@intrinsic
def _f32_as_u32(typingctx: Any, x: Any) -> Any:
    """The bit pattern of an fp32 as uint32."""
    if x != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def _u32_as_f32(typingctx: Any, x: Any) -> Any:
    """The fp32 of a uint32 bit pattern."""
    if x != types.uint32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _fma_f32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` in fp32, rounded once."""
    if not a == b == c == types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32] * 3))
        return builder.call(fn, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(inline="always")
def f32_bits(x: float | np.float32) -> int:
    """The bit pattern of the fp32 ``x`` (0 .. 2^32 - 1)."""
    return int(_f32_as_u32(x))  # type: ignore[call-arg]


@njit(inline="always")
def bits_f32(bits: int) -> float:
    """The fp32 with the bit pattern ``bits`` (low 32 bits)."""
    return _u32_as_f32(np.uint32(bits & MASK32))  # type: ignore[call-arg]


@njit(inline="always")
def fma32(a: float, b: float, c: float) -> float:
    """``a * b + c`` in fp32 (fp32 arguments) with a single rounding."""
    return _fma_f32(a, b, c)  # type: ignore[call-arg]


@njit(inline="always")
def bf16_f32(bits: int) -> float:
    """The bf16 pattern ``bits`` (uint16) as fp32 (exact)."""
    return bits_f32(int(bits) << 16)


@njit(inline="always")
def f32_bf16(x: float) -> int:
    """``x`` rounded to nearest-even bf16, as a 16-bit pattern; NaN -> ``0xFFFF``."""
    if x != x:
        return 0xFFFF
    bits = f32_bits(x)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF
