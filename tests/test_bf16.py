"""The bfloat16 GEMM of the backend (``recsys_fast.backend.bf16_gemm``): exact on values that
survive bfloat16 (half-star ratings, small counts), chosen only for those, through JAX or
PyTorch (CUDA); here it runs JAX's CPU build, under the CPU and the simulated GPU backends."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from recsys_fast import backend


def test_bf16_exact_accepts_ratings_and_refuses_other_values():
    ratings = np.arange(1, 11, dtype=np.float32) / 2  # 0.5 .. 5.0
    assert backend.bf16_exact(ratings)
    assert backend.bf16_exact(np.arange(257, dtype=np.float64))
    assert not backend.bf16_exact(np.array([257.0]))  # 9 significant bits
    assert not backend.bf16_exact(np.array([0.1], dtype=np.float32))
    assert not backend.bf16_exact(np.array([1.0 + 2**-10]))


def test_without_a_bf16_library_the_reason_names_each(monkeypatch):
    def missing(_gpu):
        raise ImportError("not installed")

    monkeypatch.setattr(backend, "_BF16_MAKERS", {"jax": missing, "torch": missing})
    backend.bf16_gemm.cache_clear()
    try:
        f, why = backend.bf16_gemm("cpu")
    finally:
        backend.bf16_gemm.cache_clear()
    assert f is None and "jax: ImportError" in why and "torch: ImportError" in why


needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="optional package jax not installed (pip install 'jax[cpu]')")


@needs_jax
@pytest.mark.parametrize("where", ["cpu", "simulated-gpu"])
def test_bf16_gemm_is_exact_on_ratings_and_rounds_other_values(where, monkeypatch):
    backend.bf16_gemm.cache_clear()
    be = backend.SimulatedGPU() if where == "simulated-gpu" else "cpu"
    f, how = backend.bf16_gemm.__wrapped__(be) if where == "simulated-gpu" else backend.bf16_gemm(be)
    assert f is not None and how == "jax", how
    rng = np.random.default_rng(0)
    A = rng.integers(0, 11, (70, 900)).astype(np.float32) / 2
    B = rng.integers(0, 11, (50, 900)).astype(np.float32) / 2
    got = f(A, B)
    assert got.dtype == np.float32 and got.shape == (70, 50)
    np.testing.assert_array_equal(got, A.astype(np.float64) @ B.T.astype(np.float64))
    C = rng.random((20, 300), dtype=np.float32)
    err = np.abs(f(C, C) - C.astype(np.float64) @ C.T).max()
    assert 1e-4 < err < 1.0  # bfloat16 rounding of non-exact inputs is visible


@needs_jax
def test_cosine_topk_bf16_on_the_simulated_gpu_equals_float32():
    """The dense-bf16 plan (raw ratings in bfloat16, float32 accumulation, norms divided out)
    gives the float32 result on half-star ratings, and is refused on values bfloat16 rounds."""
    import scipy.sparse as sp

    from recsys_fast.kernels import cosine_topk_result

    rng = np.random.default_rng(1)
    D = np.where(rng.random((120, 400)) < 0.1, rng.integers(1, 11, (120, 400)) / 2, 0)
    X = sp.csr_matrix(D.astype(np.float32))
    gpu = backend.SimulatedGPU()
    ref = cosine_topk_result(X, 10, strategy="dense", tf32=False, backend=gpu)
    got = cosine_topk_result(X, 10, strategy="dense", bf16=True, backend=gpu)
    assert got.strategy == "dense-bf16" and "bfloat16" in got.precision
    np.testing.assert_array_equal(got.matrix.indptr, ref.matrix.indptr)
    np.testing.assert_array_equal(got.matrix.indices, ref.matrix.indices)
    np.testing.assert_allclose(got.matrix.data, ref.matrix.data, rtol=1e-6)
    with pytest.raises(ValueError, match="not exact in bfloat16"):
        cosine_topk_result(X * np.float32(1.1), 10, strategy="dense", bf16=True, backend=gpu)
    with pytest.raises(ValueError, match="GPU backend"):
        cosine_topk_result(X, 10, strategy="dense", bf16=True)
