"""The add-a-backend recipe, proved: a test-only array driver (``cpu64``: numpy and scipy,
every input it is handed cast to float64) registered in one call, with no change to any
kernel, passes the conformance checks the ``cpu`` backend passes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from test_kernels_similarity import assert_topk_matches, random_matrix

from recsys_fast.backend import (
    CPU,
    Backend,
    backend_names,
    get_backend,
    register_backend,
    to_host,
    unregister_backend,
)
from recsys_fast.kernels import (
    FixedCF,
    build_user_item_csr,
    cosine_topk_result,
    predict_course,
    tfidf_topk,
)


class Float64Host(Backend):
    """Test-only array driver: host arrays, every array handed to it cast to float64."""

    def __init__(self):
        super().__init__("cpu64", np, sp)

    def __reduce__(self):
        return (Float64Host, ())

    def to_device(self, x):
        x = to_host(x)
        if sp.issparse(x):
            return x.astype(np.float64).tocsr() if x.dtype.kind == "f" else x.tocsr()
        x = np.asarray(x)
        return x.astype(np.float64) if x.dtype.kind == "f" else x


@pytest.fixture
def cpu64():
    register_backend("cpu64", Float64Host)
    yield "cpu64"
    unregister_backend("cpu64")


def test_registration_is_the_whole_recipe(cpu64):
    be = get_backend(cpu64)
    assert isinstance(be, Float64Host) and be.host and be.dense_share == CPU.dense_share
    assert cpu64 in backend_names()
    with pytest.raises(ValueError, match="cannot register"):
        register_backend("cpu", Float64Host)


def test_unknown_backend_names_the_registered_ones(cpu64):
    with pytest.raises(ValueError, match="cpu64"):
        get_backend("nope")


@pytest.mark.parametrize("strategy", ["auto", "sparse", "dense", "spmm", "spgemm"])
def test_cosine_topk_conforms(cpu64, strategy):
    X = random_matrix(7, 120, 60, 0.1, np.float32, ratings=True)
    res = cosine_topk_result(X, 8, strategy=strategy, backend=cpu64, dtype=np.float64)
    ref = cosine_topk_result(X, 8, strategy=strategy, backend="cpu", dtype=np.float64)
    assert_topk_matches(res.matrix, X, 8, include_self=False, atol=1e-9)
    assert res.strategy == ref.strategy or strategy == "auto"
    assert abs(res.matrix - ref.matrix).max() <= 1e-12


def test_csr_build_conforms(cpu64, rng):
    rows = rng.integers(0, 50, 400)
    cols = rng.integers(0, 30, 400)
    vals = rng.integers(1, 6, 400).astype(np.float32)
    got = build_user_item_csr(rows, cols, vals, (50, 30), backend=cpu64)
    ref = build_user_item_csr(rows, cols, vals, (50, 30), backend="cpu")
    assert (got != ref).nnz == 0


@pytest.mark.parametrize("kind", ["user", "item"])
def test_cf_conforms(cpu64, kind):
    R = random_matrix(8, 60, 40, 0.2, np.float64, ratings=True)
    np.testing.assert_allclose(predict_course(R, kind, backend=cpu64),
                               predict_course(R, kind, backend="cpu"), rtol=1e-9, atol=1e-9)
    users = np.arange(10)
    got = FixedCF(kind, k=5, backend=cpu64).fit(R).predict_users(users)
    ref = FixedCF(kind, k=5, backend="cpu").fit(R).predict_users(users)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_tfidf_topk_conforms(cpu64):
    import pandas as pd

    words = ["red", "green", "blue", "cotton", "shirt", "wool", "hat", "dress", "linen"]
    rng = np.random.default_rng(3)
    docs = pd.DataFrame({"id": range(40), "description": [
        " ".join(rng.choice(words, 6)) for _ in range(40)]})
    got = tfidf_topk(docs, k=5, backend=cpu64, dtype=np.float64)
    ref = tfidf_topk(docs, k=5, backend="cpu", dtype=np.float64)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-12)
