"""The ``cosine_topk/spark`` peer: Spark MLlib ``RowMatrix.columnSimilarities(0.0)`` + top-k.

Registered with its requirement; skipped with the install note without pyspark and with the
reason without a JVM (both simulated, so these run everywhere); with pyspark and a JVM here, its
top-k equals ``kernels.cosine_topk`` on small random matrices, tie rule included.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_fast.errors import BackendUnavailableError
from recsys_fast.harness.cases import spark_topk
from recsys_fast.harness.cases.impls_similarity import SparkTopK
from recsys_fast.harness.cases.registry import Registry, default_registry
from recsys_fast.harness.run import runner
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.runner import RunSettings

FAST = RunSettings(repeat=1, warmup=1, max_time=0.5)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(runner, "gpu_available", lambda: False)


@pytest.fixture
def no_java(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java on it


def test_spark_peer_is_registered_with_its_requirement():
    case = default_registry().get("cosine_topk", "spark", "cpu")
    assert case.role == "peer" and case.requires == ("pyspark",)
    assert ".[spark]" in case.install_note and "Java" in case.install_note
    assert "columnSimilarities(0.0)" in case.note and "exact" in case.note
    assert case.teardown is not None and case.unavailable is not None


def test_missing_pyspark_is_a_skip_with_the_install_note(no_gpu, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    assert SparkTopK.missing() == ["pyspark"]
    reg = Registry()
    reg.add(SparkTopK().case())
    row = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)[0]
    assert row.status == "skipped"
    assert "pyspark not installed" in row.skipped_reason
    assert "pip install -e '.[spark]'" in row.skipped_reason


def test_no_jvm_is_a_skip_with_the_reason(no_gpu, no_java, monkeypatch):
    monkeypatch.setattr(SparkTopK, "requires", ())  # whether pyspark is installed or not
    assert "java is not on PATH" in SparkTopK.unavailable()
    reg = Registry()
    reg.add(SparkTopK().case())
    row = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)[0]
    assert row.status == "skipped", row.error
    assert row.skipped_reason.startswith("no Java runtime")
    # asv and direct calls reach setup without the runner's check: the same reason, raised
    with pytest.raises(BackendUnavailableError, match="no Java runtime"):
        SparkTopK().setup(CaseContext(reg), "tiny")


def test_java_home_without_java_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert "JAVA_HOME is set but" in spark_topk.java_problem()
    exe = tmp_path / "bin" / "java"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert spark_topk.java_problem() is None


def test_driver_heap_grows_with_the_pairs_and_refuses_25m():
    from recsys_fast.harness.run.context import scale_spec

    small, large = (spark_topk.driver_heap_bytes(10**5, n) for n in (1_000, 10_000))
    assert small % (256 << 20) == 0 and large % (256 << 20) == 0 and small >= 512 << 20
    assert large > 4 * small  # ~ n_items^2 pairs
    assert SparkTopK().memory_estimate(scale_spec("25m")) > 100 << 30  # every pair of 59k items


# -- with pyspark and a JVM -------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark_matrix():
    """``start(R)`` for a factory: one session per module (starting a JVM takes seconds)."""
    if SparkTopK.missing():
        pytest.skip("optional package pyspark not installed (pip install -e '.[spark]')")
    if spark_topk.java_problem():
        pytest.skip(spark_topk.java_problem())
    opened = []

    def start(R):
        if opened:
            opened[-1].close()
        opened.append(spark_topk.start(R, threads=2, heap_bytes=512 << 20))
        return opened[-1]

    yield start
    if opened:
        opened[-1].close()


def _random_users_items(seed: int, shape=(60, 90), density=0.15):
    R = sp.random(*shape, density=density, format="csr", random_state=seed,
                  data_rvs=lambda n: np.random.default_rng(seed).uniform(0.5, 5.0, n))
    R.data = R.data.astype(np.float32)
    return R


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 10])
def test_spark_topk_equals_cosine_topk(spark_matrix, k):
    from recsys_fast.kernels import cosine_topk

    R = _random_users_items(seed=k)  # users x items; a few items have no user
    got = spark_topk.column_topk(spark_matrix(R), k)
    want = cosine_topk(R.T.tocsr(), k, dtype=np.float64)
    assert got.shape == want.shape == (R.shape[1], R.shape[1])
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=0, atol=1e-12)
    assert (got.diagonal() == 0).all() and (np.diff(got.indptr) <= k).all()


@pytest.mark.slow
def test_spark_topk_breaks_ties_to_the_lower_index(spark_matrix):
    """Six identical binary columns (their similarities are 1 exactly, in any order of
    summation) and ten others: each copy's top 3 are the lowest-index other copies."""
    from recsys_fast.kernels import cosine_topk

    rng = np.random.default_rng(1)
    base = (rng.random(40) < 0.5).astype(float)
    others = [rng.random(40) * (rng.random(40) < 0.5) for _ in range(10)]
    R = sp.csr_matrix(np.stack([base] * 6 + others, axis=1))
    got = spark_topk.column_topk(spark_matrix(R), 3)
    assert [got[i].indices.tolist() for i in range(6)] == [
        [1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2], [0, 1, 2]]
    want = cosine_topk(R.T.tocsr(), 3, dtype=np.float64)  # the project's rule, the same
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=0, atol=1e-12)
