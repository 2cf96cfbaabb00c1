"""CSR matrices as flat named arrays (for safetensors) and back, and as torch sparse tensors."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


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


def torch_csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """`matrix` as a float32 torch sparse CSR tensor on `device` (int32 indices where they fit)."""
    index_dtype = torch.int32 if matrix.nnz < 2**31 else torch.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr).to(device, index_dtype),
            torch.from_numpy(matrix.indices).to(device, index_dtype),
            torch.from_numpy(np.asarray(matrix.data, dtype=np.float32)).to(device),
            size=matrix.shape,
            check_invariants=False,
        )
