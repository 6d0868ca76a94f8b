"""Misuse gets a clear error (one line, exit 2 on the command line), never a traceback, a
wrapped value or a silently empty result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from recsys_fast.cli import main
from recsys_fast.errors import ConfigError, MemoryBudgetError
from recsys_fast.kernels import (
    build_user_item_csr,
    cosine_distances,
    cosine_topk,
    tfidf_topk,
)
from recsys_fast.kernels.cf_course import as_train_csr, predict_course
from recsys_fast.kernels.popularity import weighted_rating
from recsys_fast.memory import ENV_BUDGET, available_bytes
from recsys_fast.naive import simple


@pytest.mark.parametrize("option", ["--kernels", "--scale", "--impl", "--backend"])
@pytest.mark.parametrize("value", [",", " , ", ""])
def test_an_empty_name_list_is_an_error_not_all(capsys, option, value):
    """``--kernels ","`` selected every case; an empty list of names is refused, as for scales."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", option, value, "--list"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "empty list" in err and option in err and "Traceback" not in err


def test_eval_refuses_an_unwritable_out_before_evaluating(monkeypatch, tmp_path, capsys):
    """``eval --out`` is checked first: hours of evaluation are not lost to a bad folder."""
    from recsys_fast.quality import evaluate

    def never(*a, **kw):
        raise AssertionError("evaluated before checking --out")

    monkeypatch.setattr(evaluate, "evaluate", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["eval", "--dataset", "synthetic-100k", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err


# -- RECSYS_FAST_MEMORY_BUDGET --------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "-5G", "1e400", "lots", "0.2"])
def test_memory_budget_must_be_a_positive_finite_size(monkeypatch, value):
    monkeypatch.setenv(ENV_BUDGET, value)
    with pytest.raises(ConfigError) as exc:
        available_bytes()
    assert ENV_BUDGET in str(exc.value) and repr(value) in str(exc.value)


def test_memory_budget_inf_on_the_command_line_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv(ENV_BUDGET, "inf")
    assert main(["recommend", "--which", "cf", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys-fast: error:") and ENV_BUDGET in err
    assert err.count("\n") == 1 and "Traceback" not in err


# -- block_rows ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_block_rows_must_be_a_positive_int(bad):
    X = scipy.sparse.random(20, 6, density=0.5, random_state=0, format="csr")
    with pytest.raises((TypeError, ValueError), match="block_rows"):
        cosine_topk(X, 3, block_rows=bad, strategy="dense")
    docs = pd.DataFrame({"id": [1, 2, 3], "description": ["red coat", "blue coat", "red hat"]})
    with pytest.raises((TypeError, ValueError), match="block_rows"):
        tfidf_topk(docs, 2, block_rows=bad)


def test_block_rows_valid_values_still_work():
    X = scipy.sparse.random(20, 6, density=0.5, random_state=0, format="csr")
    a = cosine_topk(X, 3, block_rows=np.int64(4), strategy="dense")
    b = cosine_topk(X, 3, strategy="sparse")
    assert abs(a - b).max() < 1e-5


# -- build_user_item_csr ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2.5, 3), ("2", 3), (2,), (2, 3, 4), 5, (True, 3)])
def test_csr_shape_must_be_two_ints(shape):
    with pytest.raises(TypeError, match="shape"):
        build_user_item_csr([0, 1], [0, 1], [1.0, 2.0], shape=shape)


def test_csr_negative_or_huge_shape_refused_before_allocating(monkeypatch):
    with pytest.raises(ValueError, match="negative"):
        build_user_item_csr([0], [0], [1.0], shape=(-1, 3))
    with pytest.raises(ValueError, match="64-bit"):
        build_user_item_csr([0], [0], [1.0], shape=(2**40, 2**40))
    monkeypatch.setenv(ENV_BUDGET, "1M")
    with pytest.raises(MemoryBudgetError, match="row pointer"):
        build_user_item_csr([0], [0], [1.0], shape=(10**7, 3))


def test_csr_integer_dtype_never_wraps_or_truncates():
    with pytest.raises(ValueError, match="wrap"):
        build_user_item_csr([0, 1], [0, 1], [5, 300], dtype=np.int8)
    with pytest.raises(ValueError, match="wrap"):
        build_user_item_csr([0], [0], [-1], dtype=np.uint8)
    with pytest.raises(ValueError, match="fraction"):
        build_user_item_csr([0, 1], [0, 1], [1.0, 2.5], dtype=np.int32)
    with pytest.raises(ValueError, match="overflows"):
        build_user_item_csr([0], [0], [1e300], dtype=np.float32)
    m = build_user_item_csr([0, 1], [0, 1], [5, 100], dtype=np.int8)
    assert m.toarray().tolist() == [[5, 0], [0, 100]]


# -- predict_course -------------------------------------------------------------------------
def test_predict_course_takes_a_sparse_similarity():
    rng = np.random.default_rng(0)
    R = np.where(rng.random((6, 5)) < 0.6, rng.integers(1, 6, (6, 5)), 0).astype(float)
    S = cosine_distances(R.T)
    dense = predict_course(R, "item", similarity=S, strategy="sparse")
    sparse = predict_course(R, "item", similarity=scipy.sparse.csr_matrix(S), strategy="sparse")
    np.testing.assert_allclose(sparse, dense, rtol=1e-12)
    with pytest.raises(TypeError, match="similarity"):
        predict_course(R, "item", similarity=np.full((5, 5), "x"))


def test_course_ratings_whose_squares_overflow_or_underflow_are_refused():
    R = np.array([[1.0, 0.0, 3.0], [2.0, 4.0, 0.0]])
    for scale, what in ((1e200, "overflow"), (1e-200, "underflow")):
        with pytest.raises(ValueError, match=f"row 0, column 0.*{what}.*rescale"):
            predict_course(R * scale, "user")
    with pytest.raises(TypeError, match="floating"):
        as_train_csr(R, dtype=np.int16)


# -- weighted rating ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_weighted_rating_refuses_infinite_votes(bad):
    counts = np.array([10.0, bad, 30.0])
    with pytest.raises(ValueError, match="vote_count is infinite at positions \\[1\\]"):
        weighted_rating(counts, np.array([3.0, 4.0, 5.0]))
    with pytest.raises(ValueError, match="vote_average is infinite"):
        weighted_rating(np.array([1.0, 2.0, 3.0]), np.array([3.0, bad, 5.0]))
    md = pd.DataFrame({"title": ["a", "b", "c"], "vote_count": counts,
                       "vote_average": [3.0, 4.0, 5.0]}, index=[7, 8, 9])
    with pytest.raises(ValueError, match="'vote_count' is infinite at rows \\[8\\]"):
        simple.weighted_rating_chart(md)


# -- cosine kernels at extreme magnitudes ---------------------------------------------------
@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e-310])
def test_cosine_rescales_rows_whose_squares_over_or_underflow(scale):
    base = np.array([[1.0, 2.0, 0.0, 1.0], [2.0, 4.0, 0.5, 0.0], [0.0, 1.0, 3.0, 1.0],
                     [1.0, 0.0, 1.0, 2.0]])
    X = base.copy()
    X[1] *= scale  # one row at an extreme magnitude; cosine does not depend on the scale
    X[3] *= scale
    want = cosine_topk(scipy.sparse.csr_matrix(base), 2, dtype=np.float64).toarray()
    for strategy in ("sparse", "dense"):
        got = cosine_topk(scipy.sparse.csr_matrix(X), 2, strategy=strategy, dtype=np.float64)
        assert got.nnz == 8  # never a silently empty top-k
        np.testing.assert_allclose(got.toarray(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cosine_distances(X), cosine_distances(base), atol=1e-12)


@pytest.fixture
def simulated_gpu(monkeypatch):
    """The ``gpu`` backend as numpy/scipy under the GPU code paths."""
    from recsys_fast import backend

    monkeypatch.setenv(backend.SIMULATE_ENV, "1")
    backend._gpu_probe.cache_clear()
    yield backend.get_backend("gpu")
    monkeypatch.delenv(backend.SIMULATE_ENV)
    backend._gpu_probe.cache_clear()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e-310])
def test_cosine_rescaling_on_the_gpu_code_path(simulated_gpu, scale):
    base = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.5], [0.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    X = base.copy()
    X[1] *= scale
    want = cosine_distances(base)
    got = cosine_distances(scipy.sparse.csr_matrix(X), backend=simulated_gpu)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_fixed_cf_batch_size_must_be_a_positive_int(bad):
    from recsys_fast.kernels import FixedCF

    R = np.array([[5.0, 0.0, 3.0], [4.0, 2.0, 0.0], [0.0, 1.0, 4.0]])
    model = FixedCF("user", k=1, dtype=np.float64).fit(R)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        model.predict([0, 1], [1, 2], batch_size=bad)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        model.recommend([0, 1], 1, batch_size=bad)
    assert model.predict([0, 1], [1, 2], batch_size=1).shape == (2,)
