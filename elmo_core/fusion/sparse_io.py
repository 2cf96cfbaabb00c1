"""CSR matrices as flat named arrays (for safetensors) and back."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def csr_tensors(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """`name.data` (float32), `name.indices` (int32), `name.indptr` (int64), `name.shape`."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{name}.data": matrix.data.astype(np.float32),
        f"{name}.indices": matrix.indices.astype(np.int32),
        f"{name}.indptr": matrix.indptr.astype(np.int64),
        f"{name}.shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_tensors(tensors: dict[str, np.ndarray], name: str) -> sp.csr_matrix:
    """The CSR matrix `csr_tensors(name, ...)` wrote."""
    shape = tuple(int(v) for v in tensors[f"{name}.shape"])
    return sp.csr_matrix(
        (tensors[f"{name}.data"], tensors[f"{name}.indices"], tensors[f"{name}.indptr"]),
        shape=shape,
    )
