"""Work models: the floating-point operations and bytes a kernel's call must do, from the shapes
and non-zeros of its inputs, so throughput is reported as achieved work (never a dense-equivalent
figure for a sparse kernel) and each case can be placed on the run's roofline.

Sparse products count multiply-adds actually needed: ``S = A @ A.T`` over CSR rows ``A``
(n x m) costs ``2 * sum_j c_j**2`` flops, ``c_j`` the non-zeros of column ``j`` (every pair of
rows sharing column ``j`` contributes one multiply-add; both triangles of S are counted, as a
kernel computing one triangle still produces both). Bytes are what a call must read and write
at least: its inputs once (CSR: values + indices + row pointers) and its outputs once.
"""

from __future__ import annotations

import numpy as np


def csr_bytes(X) -> float:
    """Bytes of a CSR matrix's arrays (values, column indices, row pointers)."""
    return float(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def gram_flops(X) -> float:
    """Flops of ``X @ X.T`` for CSR ``X`` (rows are the vectors compared)."""
    from recsys_fast.kernels.core import pair_madds

    return 2.0 * pair_madds(X)


def dense_bytes(shape: tuple[int, ...], itemsize: int) -> float:
    return float(np.prod(shape, dtype=np.float64)) * itemsize
