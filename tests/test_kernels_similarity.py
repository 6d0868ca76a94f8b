"""CSR build and cosine kernels against dense / sklearn references (property + real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics.pairwise import cosine_similarity, pairwise_distances

from recsys_fast.backend import CPU
from recsys_fast.kernels import (
    TopKResult,
    _topk_auto,
    _topk_sparse,
    build_user_item_csr,
    core,
    cosine_distances,
    cosine_topk,
    cosine_topk_result,
    topk_strategies,
    warmup,
)
from recsys_fast.kernels._topk_dense import tf32_exact

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()  # numba compilation (or cache load) once, outside the examples


def random_matrix(seed: int, n_rows: int, n_cols: int, density: float, dtype, ratings: bool):
    """Non-negative sparse matrix; integer 'ratings' values make exact ties likely."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < density
    vals = rng.integers(1, 6, size=mask.sum()) if ratings else rng.random(mask.sum()) + 0.01
    dense = np.zeros((n_rows, n_cols), dtype=dtype)
    dense[mask] = vals
    return sp.csr_matrix(dense)


matrices = st.builds(
    random_matrix,
    seed=st.integers(0, 2**31 - 1),
    n_rows=st.integers(1, 40),
    n_cols=st.integers(1, 30),
    density=st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    ratings=st.booleans(),
)


def assert_topk_matches(result, X, k: int, include_self: bool, atol: float = 1e-5) -> None:
    """Tie-aware: per row, kept values == reference top-k values, each equal to its reference."""
    ref = cosine_similarity(X.astype(np.float64))
    n = X.shape[0]
    if not include_self:
        np.fill_diagonal(ref, 0.0)
    result = sp.csr_matrix(result)
    assert result.shape == (n, n)
    for i in range(n):
        cols = result.indices[result.indptr[i] : result.indptr[i + 1]]
        vals = result.data[result.indptr[i] : result.indptr[i + 1]]
        assert np.all(np.diff(cols) > 0), f"row {i}: columns not strictly ascending"
        if not include_self:
            assert i not in cols, f"row {i} lists itself"
        assert np.all(vals > 0)
        row = ref[i][ref[i] > 0]
        expected = np.sort(row)[::-1][:k]
        got = np.sort(vals)[::-1]
        assert got.size == expected.size, f"row {i}: {got.size} kept, expected {expected.size}"
        np.testing.assert_allclose(got, expected, atol=atol, err_msg=f"row {i} values")
        np.testing.assert_allclose(vals, ref[i, cols], atol=atol, err_msg=f"row {i} neighbours")


# ---------------------------------------------------------------- build_user_item_csr


def dense_last_wins(rows, cols, vals, shape):
    m = np.zeros(shape)
    for r, c, v in zip(rows, cols, vals, strict=True):
        m[r, c] = v
    return m


@PROPS
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(0, 200),
    shape=st.tuples(st.integers(1, 15), st.integers(1, 15)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_build_csr_matches_dense_last_wins(seed, n, shape, dtype):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, shape[0], n)  # small shapes: many duplicate pairs
    cols = rng.integers(0, shape[1], n)
    vals = rng.integers(1, 6, n).astype(np.float64) + rng.random(n)
    m = build_user_item_csr(rows, cols, vals, shape, dtype=dtype)
    assert sp.isspmatrix_csr(m) or isinstance(m, sp.csr_array)
    assert m.shape == shape and m.dtype == dtype
    assert m.has_canonical_format
    np.testing.assert_array_equal(
        m.toarray(), dense_last_wins(rows, cols, vals, shape).astype(dtype)
    )
    assert m.nnz == len(set(zip(rows.tolist(), cols.tolist(), strict=True)))


def test_build_csr_default_shape_and_sorted_fast_path():
    m = build_user_item_csr([0, 0, 2], [1, 3, 0], [1.0, 2.0, 3.0])
    assert m.shape == (3, 4)
    np.testing.assert_array_equal(m.indptr, [0, 2, 2, 3])
    np.testing.assert_array_equal(m.indices, [1, 3, 0])


def test_build_csr_equals_naive_data_matrix(rng):
    collaborative = pytest.importorskip("recsys_fast.naive.collaborative")
    n = 500
    ratings = pd.DataFrame(
        {
            "user_id": rng.integers(1, 30, n),
            "item_id": rng.integers(1, 40, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": np.arange(n),
        }
    )
    naive = collaborative.build_data_matrix(ratings)
    ours = build_user_item_csr(
        ratings.user_id.to_numpy() - 1,
        ratings.item_id.to_numpy() - 1,
        ratings.rating.to_numpy(),
        naive.shape,
        dtype=np.float64,
    )
    np.testing.assert_array_equal(ours.toarray(), naive)


@pytest.mark.parametrize(
    ("rows", "cols", "vals", "shape", "exc", "match"),
    [
        ([0, 1], [0], [1.0, 2.0], None, ValueError, "lengths differ"),
        ([0, 1], [0, 1], [1.0, np.nan], None, ValueError, r"values\[1\] = nan"),
        ([0, 1], [0, 1], [1.0, np.inf], None, ValueError, r"values\[1\] = inf"),
        ([0, -3], [0, 1], [1.0, 2.0], None, ValueError, r"user_idx\[1\] = -3 is negative"),
        ([0, 1], [0, 7], [1.0, 2.0], (2, 5), ValueError, r"item_idx\[1\] = 7 is out of range"),
        ([0, 4], [0, 1], [1.0, 2.0], (3, 5), ValueError, r"user_idx\[1\] = 4 is out of range"),
        ([0.0, 1.5], [0, 1], [1.0, 2.0], None, TypeError, "user_idx must hold integers"),
        ([0, 1], [0, 1], ["a", "b"], None, TypeError, "values must be real numbers"),
    ],
)
def test_build_csr_bad_input(rows, cols, vals, shape, exc, match):
    with pytest.raises(exc, match=match):
        build_user_item_csr(np.array(rows), np.array(cols), np.array(vals), shape)


# ---------------------------------------------------------------- cosine_distances


@PROPS
@given(X=matrices, as_dense=st.booleans())
def test_cosine_distances_match_sklearn(X, as_dense):
    inp = X.toarray() if as_dense else X
    ours = cosine_distances(inp)
    ref = pairwise_distances(inp, metric="cosine")
    assert ours.dtype == ref.dtype
    atol = 1e-6 if ref.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)
    np.testing.assert_array_equal(np.diag(ours), 0)


@pytest.mark.parametrize("ratio", [0.0, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_distances_sparse_gram_and_gemm_paths(monkeypatch, ratio, dtype):
    """Both CPU products, the numba Gram from the non-zeros (ratio 0) and GEMM or the sparse
    product (ratio inf), equal sklearn, zero rows included."""
    from recsys_fast.kernels import similarity

    monkeypatch.setattr(similarity, "GRAM_RATIO", ratio)
    for density in (0.01, 0.3):
        X = random_matrix(9, 120, 70, density, dtype, ratings=True).tolil()
        X[5] = 0
        X = X.tocsr()
        ours = cosine_distances(X)
        np.testing.assert_allclose(ours, pairwise_distances(X.toarray(), metric="cosine"),
                                   atol=1e-6 if dtype == np.float32 else 1e-12, rtol=0)
        np.testing.assert_array_equal(np.diag(ours), 0)
        assert ours[5, 0] == 1.0


def test_cosine_distances_zero_rows_and_dtype():
    X = np.array([[0, 0, 0], [1, 2, 0], [0, 0, 0], [2, 4, 0]], dtype=np.int64)
    d = cosine_distances(X)
    assert d.dtype == np.float64  # as sklearn for non-float32 input
    np.testing.assert_allclose(d, pairwise_distances(X, metric="cosine"), atol=1e-12)
    assert d[0, 2] == 1.0 and d[0, 0] == 0.0 and abs(d[1, 3]) < 1e-12
    assert cosine_distances(X, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------- cosine_topk


@PROPS
@given(
    X=matrices,
    k_frac=st.floats(0.0, 1.0),
    include_self=st.booleans(),
    strategy=st.sampled_from(["sparse", "dense", "spmm", "spgemm", "auto"]),
)
def test_topk_matches_full_reference(X, k_frac, include_self, strategy):
    n = X.shape[0]
    limit = n if include_self else n - 1
    if limit < 1:
        with pytest.raises(ValueError, match="exceeds"):
            cosine_topk(X, 1, include_self=include_self, strategy=strategy)
        return
    k = 1 + int(k_frac * (limit - 1))
    res = cosine_topk_result(X, k, include_self=include_self, strategy=strategy, dtype=X.dtype)
    out = res.matrix
    assert out.dtype == X.dtype
    assert res.precision == np.dtype(X.dtype).name
    if strategy != "auto":
        assert res.strategy == strategy
    else:
        assert res.strategy in ("sparse", "dense")
    atol = 1e-5 if X.dtype == np.float32 else 1e-12
    assert_topk_matches(out, X, k, include_self, atol=atol)


@pytest.mark.parametrize("strategy", ["sparse", "dense", "spmm", "spgemm"])
def test_topk_ties_go_to_lower_column(strategy):
    X = sp.csr_matrix(np.ones((6, 1), dtype=np.float32))  # every similarity is exactly 1
    out = cosine_topk(X, 2, strategy=strategy).toarray()
    expected_cols = {0: [1, 2], 1: [0, 2], 3: [0, 1], 5: [0, 1]}
    for row, cols in expected_cols.items():
        np.testing.assert_array_equal(np.flatnonzero(out[row]), cols)


@pytest.mark.parametrize("strategy", ["sparse", "dense", "spmm", "spgemm"])
def test_topk_ties_go_to_lower_original_column_whatever_the_degrees(strategy):
    """Rows 1 and 2 tie for row 0 (both 1/sqrt 2); row 2 has more non-zeros, so the sparse
    kernel's popularity relabelling puts it first: the tie must still go to column 1."""
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=np.float64))
    for dt in (np.float32, np.float64):
        out = cosine_topk(X, 1, strategy=strategy, dtype=dt)
        assert out[0].indices.tolist() == [1]


@pytest.mark.parametrize("strategy", ["sparse", "dense", "spmm", "spgemm"])
def test_topk_zero_rows_and_negative_similarities(strategy):
    X = sp.csr_matrix(
        np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [-1, 0, 0], [0, 0, 2]], dtype=np.float64)
    )
    out = cosine_topk(X, 3, strategy=strategy, dtype=np.float64)
    assert out[1].nnz == 0 and out[:, 1].nnz == 0  # zero row: no neighbours, nobody's
    assert out[3].nnz == 0  # only negative or zero similarities: dropped
    assert out[4].nnz == 0
    np.testing.assert_allclose(out[0].toarray(), [[0, 0, np.sqrt(0.5), 0, 0]])


@pytest.mark.parametrize("density", [0.003, 0.3])
def test_topk_strategies_threads_and_halving_agree(density):
    X = random_matrix(7, 300, 2000, density, np.float32, ratings=False)
    ref = cosine_topk(X, 10, strategy="sparse", n_threads=1)
    assert_topk_matches(ref, X, 10, include_self=False)
    import numba

    two = cosine_topk(X, 10, strategy="sparse", n_threads=min(2, numba.config.NUMBA_NUM_THREADS))
    # each pair's similarity is computed once, in the same order: bit-identical results
    np.testing.assert_array_equal(two.indptr, ref.indptr)
    np.testing.assert_array_equal(two.indices, ref.indices)
    np.testing.assert_array_equal(two.data, ref.data)
    Xn = core.normalized(X, CPU, np.float32)
    full_rows = _topk_sparse.sparse_topk(Xn, 10, False, 1, form="rows")
    assert_topk_matches(full_rows, X, 10, include_self=False)
    dense = cosine_topk(X, 10, strategy="dense", block_rows=37)
    assert_topk_matches(dense, X, 10, include_self=False)


blocked_inputs = st.builds(
    random_matrix,
    seed=st.integers(0, 2**31 - 1),
    n_rows=st.integers(1, 90),  # several blocks of LANES rows, a ragged last one
    n_cols=st.integers(1, 60),
    density=st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.6, 1.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    ratings=st.booleans(),
)


@PROPS
@given(X=blocked_inputs, k=st.integers(1, 120), include_self=st.booleans(),
       zero_rows=st.lists(st.integers(0, 89), max_size=5), threads=st.sampled_from([1, 2]))
def test_blocked_sparse_kernel_equals_reference_and_row_kernel(X, k, include_self, zero_rows,
                                                               threads):
    """Rows in blocks of LANES (each pair once, both heaps fed): the exact float64 top-k, and
    bit for bit the per-row kernel (every row in full), ties, empty rows and k >= the number
    of positive neighbours included."""
    import numba

    X = X.tolil()
    for r in zero_rows:
        if r < X.shape[0]:
            X[r] = 0
    X = X.tocsr()
    n = X.shape[0]
    k = min(k, n if include_self else max(1, n - 1))
    if n == 1 and not include_self:
        return
    Xn = core.normalized(core.canonical(X), CPU, X.dtype)
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    blocked = _topk_sparse.sparse_topk(Xn, k, include_self, threads, form="blocked")
    rows = _topk_sparse.sparse_topk(Xn, k, include_self, 1, form="rows")
    atol = 1e-5 if X.dtype == np.float32 else 1e-12
    assert_topk_matches(blocked, X, k, include_self, atol=atol)
    np.testing.assert_array_equal(blocked.indptr, rows.indptr)
    np.testing.assert_array_equal(blocked.indices, rows.indices)
    np.testing.assert_array_equal(blocked.data, rows.data)


@pytest.mark.parametrize(("n_rows", "n_cols", "density"),
                         [(400, 3000, 0.002), (300, 200, 0.3), (200, 20, 1.0)])
def test_blocked_kernel_on_list_and_scan_blocks(n_rows, n_cols, density):
    """Light blocks (touched-list read-back) and heavy ones (scan of the accumulator)."""
    X = random_matrix(5, n_rows, n_cols, density, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    blocked = _topk_sparse.sparse_topk(Xn, 25, False, 2 if n_rows > 250 else 1, form="blocked")
    rows = _topk_sparse.sparse_topk(Xn, 25, False, 1, form="rows")
    assert_topk_matches(blocked, X, 25, include_self=False)
    assert (blocked != rows).nnz == 0


def test_topk_result_reports_the_strategy_that_ran(monkeypatch):

    ran = []
    finish, dense_fn = _topk_sparse.SparseTopk.finish, topk_strategies.dense_topk

    def sparse_spy(*a, **kw):
        ran.append("sparse")
        return finish(*a, **kw)

    def dense_spy(*a, **kw):
        ran.append("dense")
        return dense_fn(*a, **kw)

    monkeypatch.setattr(_topk_sparse.SparseTopk, "finish", sparse_spy)
    monkeypatch.setattr(topk_strategies, "dense_topk", dense_spy)
    for X in (random_matrix(1, 60, 500, 0.01, np.float32, ratings=False),
              random_matrix(2, 60, 8, 1.0, np.float64, ratings=False)):
        for strategy in ("auto", "sparse", "dense"):
            ran.clear()
            res = cosine_topk_result(X, 5, strategy=strategy)
            assert isinstance(res, TopKResult)
            assert ran == [res.strategy]
            if strategy != "auto":
                assert res.strategy == strategy
            assert res.precision == "float32"
            assert not hasattr(res.matrix, "strategy")
            assert (cosine_topk(X, 5, strategy=res.strategy) != res.matrix).nnz == 0
    with pytest.raises(AttributeError):
        res.strategy = "dense"  # frozen


def _fixed_dense_model(monkeypatch, seconds_per_call: float):
    """The dense model's rates pinned: every dense call is modelled at ``seconds_per_call``."""
    from recsys_fast.kernels import _topk_cost

    coef = np.array([0.0, 0.0, 0.0, 0.0, seconds_per_call])
    monkeypatch.setattr(_topk_cost, "coefficients", lambda *a, **kw: coef)
    monkeypatch.setattr(_topk_auto, "DECIDED", type(_topk_auto.DECIDED)())  # no earlier choices


def _fake_clock(monkeypatch, seconds_per_block: float) -> list:
    """``SparseTopk.run`` advances a fake clock by ``seconds_per_block`` per block it runs;
    returns the sizes of the runs."""

    now = [0.0]
    sizes = []
    real_run = _topk_sparse.SparseTopk.run

    def run(self, blocks):
        sizes.append(int(blocks.size))
        now[0] += seconds_per_block * blocks.size
        real_run(self, blocks)

    monkeypatch.setattr(_topk_sparse.SparseTopk, "run", run)
    monkeypatch.setattr(_topk_sparse.time, "perf_counter", lambda: now[0])
    return sizes


@pytest.mark.parametrize("per_block, want", [(1e-6, "sparse"), (1.0, "dense")])
def test_auto_takes_the_faster_strategy_by_its_rule(monkeypatch, per_block, want):
    """The rule with fixed rates: a dense call modelled at 1 s; sparse blocks at 1 us go on as
    sparse (the trial's work kept: every block runs once), at 1 s each dense runs, after a
    trial of two chunks (the least it runs)."""

    _fixed_dense_model(monkeypatch, 1.0)
    sizes = _fake_clock(monkeypatch, per_block)
    X = random_matrix(3, 700, 300, 0.05, np.float32, ratings=True)
    res = cosine_topk_result(X, 10, n_threads=2)
    sizes = list(sizes)
    assert res.strategy == want
    ref = cosine_topk(X, 10, strategy=want, n_threads=2)
    assert (res.matrix != ref).nnz == 0
    n_blocks = -(-700 // 16)
    if want == "sparse":
        assert sum(sizes) == n_blocks  # each block once: the trial's share is not redone
    else:  # 4 s at the first chunk (2 blocks a thread) is past the budget and the cap, and
        # it fills the 1/8 prefix of 44 blocks; but one chunk never decides: a second runs
        assert sizes == [4, 4]


@pytest.mark.parametrize("pin", ["sparse", "dense"])
def test_auto_pinned_by_the_environment_runs_no_trial(monkeypatch, pin):
    """RECSYS_FAST_TOPK_AUTO pins auto's CPU choice: the pinned strategy runs without a trial
    and gives that strategy's values; a bad value is an error naming the variable."""
    from recsys_fast.kernels import _topk_auto

    def no_trial(*args, **kwargs):
        raise AssertionError("a pinned auto ran a trial")

    _fixed_dense_model(monkeypatch, 1.0)
    monkeypatch.setattr(_topk_auto, "run_or_yield", no_trial)
    monkeypatch.setenv("RECSYS_FAST_TOPK_AUTO", pin)
    X = random_matrix(8, 300, 120, 0.1, np.float32, ratings=True)
    res = cosine_topk_result(X, 6, n_threads=2)
    assert res.strategy == pin
    assert (res.matrix != cosine_topk(X, 6, strategy=pin, n_threads=2)).nnz == 0
    monkeypatch.setenv("RECSYS_FAST_TOPK_AUTO", "fastest")
    with pytest.raises(ValueError, match="RECSYS_FAST_TOPK_AUTO='fastest'"):
        cosine_topk(X, 5, n_threads=2)


def test_auto_decides_once_per_input_structure(monkeypatch):
    """A later call on the same matrix takes the earlier choice without a trial (the same
    strategy, so the same values); another k or another matrix is decided afresh."""
    _fixed_dense_model(monkeypatch, 1.0)
    sizes = _fake_clock(monkeypatch, 1.0)  # every block slow: the trial picks dense
    X = random_matrix(6, 300, 120, 0.1, np.float32, ratings=True)
    first = cosine_topk_result(X, 6, n_threads=2)
    trial_runs = len(sizes)
    assert first.strategy == "dense" and trial_runs == 2  # two chunks, the least a trial runs
    again = cosine_topk_result(X.copy(), 6, n_threads=2)
    assert again.strategy == "dense" and len(sizes) == trial_runs  # no second trial
    assert (again.matrix != first.matrix).nnz == 0
    cosine_topk_result(X, 7, n_threads=2)
    assert len(sizes) == 2 * trial_runs  # another k: a new decision
    other = random_matrix(7, 300, 120, 0.1, np.float32, ratings=True)
    cosine_topk_result(other, 6, n_threads=2)
    assert len(sizes) == 3 * trial_runs


def test_auto_rule_boundary_is_the_extrapolated_rest(monkeypatch):
    """Sparse wins exactly when the blocks not yet run, at the trial's measured time per unit
    of work (a block's streamed entries, plus one), take no longer than the modelled dense
    call times DENSE_MARGIN; blocks of unequal work in the sample do not skew the estimate."""

    X = random_matrix(4, 800, 300, 0.05, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    per_unit = 1e-7
    now = [0.0]
    real_run = _topk_sparse.SparseTopk.run

    def run_by_work(self, blocks):  # a fake clock: time proportional to the blocks' work
        now[0] += per_unit * (self.cost[blocks] + 1.0).sum()
        real_run(self, blocks)

    monkeypatch.setattr(_topk_sparse.SparseTopk, "run", run_by_work)
    monkeypatch.setattr(_topk_sparse.time, "perf_counter", lambda: now[0])
    probe = _topk_sparse.SparseTopk(Xn, 5, False, 2)
    assert probe.cost.max() > 2 * probe.cost.min() + 2  # unequal blocks: counts would skew
    total = per_unit * (probe.cost + 1.0).sum()
    for dense_s in (0.05 * total, 0.3 * total, 0.6 * total, 0.8 * total, 0.9 * total,
                    2 * total):
        run = _topk_sparse.SparseTopk(Xn, 5, False, 2)
        wins, rest, rec = _topk_sparse.trial(run, dense_s)
        want = per_unit * (run.cost[rest] + 1.0).sum()
        assert rec["trial_blocks"] + rest.size == run.n_blocks
        assert rec["sparse_rest_s"] == pytest.approx(want)
        assert wins == (want <= _topk_sparse.DENSE_MARGIN * dense_s)
        rank = np.argsort(run.order)
        assert np.all(np.diff(rank[rest]) > 0)  # the rest runs in the run's order


@pytest.mark.parametrize("stall_s", [0.3, 0.8])  # past the budget; past the cap as well
def test_auto_trial_outlasts_one_stalled_chunk(monkeypatch, stall_s):
    """A first chunk stalled far past the trial's budget (a descheduled vCPU) does not decide:
    the trial runs on until two chunks agree (a second chunk at least, even past its cap),
    and a sparse call far faster than the dense model stays sparse."""
    _fixed_dense_model(monkeypatch, 1.0)
    X = random_matrix(8, 4000, 600, 0.01, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    now = [0.0]
    real_run = _topk_sparse.SparseTopk.run
    calls = []

    def run_with_stall(self, blocks):
        calls.append(int(blocks.size))
        now[0] += stall_s if len(calls) == 1 else 1e-4 * blocks.size  # a stall, then fast
        real_run(self, blocks)

    monkeypatch.setattr(_topk_sparse.SparseTopk, "run", run_with_stall)
    monkeypatch.setattr(_topk_sparse.time, "perf_counter", lambda: now[0])
    run = _topk_sparse.SparseTopk(Xn, 5, False, 2)
    wins, _, rec = _topk_sparse.trial(run, 1.0)
    assert wins and len(calls) > 1
    assert rec["sparse_total_s"] < 0.1 * 1.0


def test_sparse_blocks_in_any_split_give_the_one_call_result(rng):
    """The kept set does not depend on which call offered a pair: blocks run in a random
    split into calls give the result of one call over all blocks, index for index."""

    X = random_matrix(5, 900, 120, 0.08, np.float32, ratings=True)  # integer ratings: ties
    Xn = core.normalized(X, CPU, np.float32)
    whole = _topk_sparse.SparseTopk(Xn, 12, True, 2).run_all()
    run = _topk_sparse.SparseTopk(Xn, 12, True, 2)
    perm = rng.permutation(run.order)
    for part in np.array_split(perm, [3, 4, 20, 41]):
        run.run(part)
    split = run.finish()
    assert (split != whole).nnz == 0
    np.testing.assert_array_equal(split.indices, whole.indices)
    assert_topk_matches(split, X, 12, include_self=True)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 64, 1000])
def test_stratified_prefixes_spread_over_the_range(n):
    from recsys_fast.kernels._topk_sparse import stratified

    s = stratified(n)
    assert sorted(s.tolist()) == list(range(n))
    for size in (1, 2, 4, 8, 16):
        if size * 4 <= n:  # each quarter of the range holds about a quarter of a prefix
            quarter = np.bincount(4 * s[: 4 * size] // n, minlength=4)
            assert quarter.min() >= size - 1


def test_dense_rates_are_cached_per_machine(monkeypatch, tmp_path):
    """The dense model is measured once, cached under the data cache, read back by the next
    process (no measurement), and measured again when its key changes or the file is
    unreadable."""
    from recsys_fast.kernels import _topk_cost

    monkeypatch.setenv("RECSYS_FAST_DATA", str(tmp_path))
    calls = []

    def measure(n, m, k, n_threads):
        def call():
            calls.append((n, m, k))
            return float(_topk_cost.dense_work(n, m, k, 512) @ [1e-11, 5e-9, 2e-8, 1e-9, 1e-3])
        return call

    block = lambda n: 512  # noqa: E731
    _topk_cost._coefficients_cached.cache_clear()
    first = _topk_cost.dense_seconds(2000, 700, 50, 1, measure, block)
    per_fit = (_topk_cost.CAL_ROUNDS + 1) * len(_topk_cost._CAL_RUNS)  # a warm call, then rounds
    assert len(calls) == per_fit
    files = list((tmp_path / "calibration").glob("*.json"))
    assert len(files) == 1
    want = float(_topk_cost.dense_work(2000, 700, 50, 512) @ [1e-11, 5e-9, 2e-8, 1e-9, 1e-3])
    assert first == pytest.approx(want, rel=1e-6)  # the fit recovers exact linear rates
    _topk_cost._coefficients_cached.cache_clear()  # a fresh process
    assert _topk_cost.dense_seconds(2000, 700, 50, 1, measure, block) == first
    assert len(calls) == per_fit  # read back, not measured
    _topk_cost._coefficients_cached.cache_clear()
    _topk_cost.dense_seconds(2000, 700, 50, 2, measure, block)  # other thread count: new key
    assert len(calls) == 2 * per_fit
    files[0].write_text("{not json")
    _topk_cost._coefficients_cached.cache_clear()
    _topk_cost.dense_seconds(2000, 700, 50, 1, measure, block)
    assert len(calls) == 3 * per_fit
    _topk_cost._coefficients_cached.cache_clear()


def test_dense_rates_keep_each_shapes_fastest_round():
    """A slow minute (here: two of the rounds, every shape 1.3-2x slower) leaves the fit on the
    fast rounds; the slow rounds are recorded beside it."""
    from recsys_fast.kernels import _topk_cost

    rates = [1e-11, 5e-9, 2e-8, 1e-9, 1e-3]
    count = {}

    def measure(n, m, k, n_threads):
        def call():
            i = count[(n, m, k)] = count.get((n, m, k), -1) + 1  # 0: the warm call
            slow = {2: 2.0, 4: 1.3}.get(i, 1.0)
            return slow * float(_topk_cost.dense_work(n, m, k, 512) @ rates)
        return call

    rec = _topk_cost.calibrate(1, measure, lambda n: 512)
    assert rec["coefficients"] == pytest.approx(rates, rel=1e-6)
    for run in rec["runs"]:
        assert len(run["rounds_s"]) == _topk_cost.CAL_ROUNDS
        assert max(run["rounds_s"]) == pytest.approx(2 * run["seconds"])


@pytest.mark.parametrize("block", [1, 5, 13, 64, 500])
@pytest.mark.parametrize("include_self", [False, True])
def test_dense_pair_blocks_equal_the_sparse_strategy(block, include_self):
    """Square blocks above the diagonal only (each serving two row blocks), blocks narrower
    than k, a ragged last block: same neighbours, ties included, as the sparse strategy."""
    X = random_matrix(11, 61, 40, 0.2, np.float64, ratings=True)  # integer ratings: ties
    ref = cosine_topk(X, 7, include_self=include_self, strategy="sparse", dtype=np.float64)
    out = cosine_topk(X, 7, include_self=include_self, strategy="dense", block_rows=block,
                      dtype=np.float64)
    assert_topk_matches(out, X, 7, include_self, atol=1e-12)
    np.testing.assert_array_equal(out.indptr, ref.indptr)
    np.testing.assert_array_equal(out.indices, ref.indices)  # the same tie-breaking
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-12)


def test_tf32_exact_values():
    half_stars = sp.csr_matrix(np.arange(1, 11, dtype=np.float64)[None, :] / 2)
    assert tf32_exact(half_stars)
    assert tf32_exact(sp.csr_matrix(np.array([[2047.0, 2048.0, 1 / 1024, 0.0]])))
    assert not tf32_exact(sp.csr_matrix(np.array([[2049.0]])))  # 12 significant bits
    assert not tf32_exact(sp.csr_matrix(np.array([[0.1]], dtype=np.float32)))
    assert not tf32_exact(sp.csr_matrix(np.array([[1 + 2.0**-30]])))  # not even float32


@pytest.mark.parametrize("ratings", [True, False])
def test_raw_value_gemm_with_scaling_equals_normalised(ratings):
    """The GPU's TF32 plan multiplies raw values and divides the norms out per block; on the
    CPU the same arithmetic runs in float32 and must give the normalised-first result."""
    X = random_matrix(5, 120, 80, 0.1, np.float32, ratings=ratings)
    X = (sp.diags((np.arange(120) != 3).astype(np.float32)) @ X).tocsr()  # row 3: zero
    X.eliminate_zeros()
    cpu = CPU
    Xn = core.normalized(X, cpu, np.float32)
    raw, tf32_on = topk_strategies.dense_topk(Xn, 7, False, 29, cpu, "dense-tf32", X)
    assert not tf32_on  # no tensor cores here: plain float32 GEMM of the raw values
    assert_topk_matches(raw, X, 7, include_self=False)
    ref, _ = topk_strategies.dense_topk(Xn, 7, False, 29, cpu, "dense", X)
    assert raw.nnz == ref.nnz and raw[3].nnz == 0


def test_topk_tf32_and_dense_memory_errors(monkeypatch):
    from recsys_fast.errors import MemoryBudgetError

    X = random_matrix(2, 300, 200, 0.05, np.float32, ratings=True)
    with pytest.raises(ValueError, match="tf32=True needs the GPU"):
        cosine_topk(X, 3, tf32=True)
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "200K")  # dense X is 240 KB
    with pytest.raises(MemoryBudgetError, match=r"dense copy of X \(300x200\)"):
        cosine_topk(X, 3, strategy="dense")
    assert cosine_topk_result(X, 3, strategy="spmm", block_rows=50).strategy == "spmm"


def test_topk_accepts_other_formats_and_dense():
    X = random_matrix(3, 20, 10, 0.4, np.float64, ratings=True)
    ref = cosine_topk(X, 4)
    for other in (X.tocoo(), X.tocsc(), X.toarray(), sp.csr_array(X)):
        np.testing.assert_allclose(cosine_topk(other, 4).toarray(), ref.toarray(), atol=1e-6)
    ints = X.astype(np.int64)  # integer ratings: converted, same result
    np.testing.assert_allclose(cosine_topk(ints, 4).toarray(), ref.toarray(), atol=1e-6)
    binary = cosine_topk(X > 0, 4, dtype=np.float64)
    assert_topk_matches(binary, (X > 0).astype(np.float64), 4, include_self=False, atol=1e-12)


@pytest.mark.parametrize(
    ("X", "kwargs", "exc", "match"),
    [
        (sp.eye(5, format="csr"), {"k": 0}, ValueError, "k must be positive"),
        (sp.eye(5, format="csr"), {"k": 5}, ValueError, r"k=5 exceeds n_rows - 1"),
        (sp.eye(5, format="csr"), {"k": 6, "include_self": True}, ValueError, "k=6 exceeds n_rows"),
        (sp.eye(5, format="csr"), {"k": 2.0}, TypeError, "k must be an integer"),
        (sp.eye(5, format="csr"), {"k": 2, "strategy": "magic"}, ValueError, "strategy must be"),
        (sp.eye(5, format="csr"), {"k": 2, "dtype": np.int32}, TypeError, "float32 or float64"),
        (sp.eye(5, format="csr"), {"k": 2, "n_threads": 0}, ValueError, "n_threads must be"),
        ([[1.0, 0.0], [0.0, 1.0]], {"k": 1}, TypeError, "got list"),
        (np.ones((2, 2, 2)), {"k": 1}, ValueError, "must be 2-D"),
        (sp.csr_matrix(np.ones((3, 2), dtype=complex)), {"k": 1}, TypeError, "real numbers"),
        (
            sp.csr_matrix(np.array([[1.0, 0.0], [np.nan, 1.0]])),
            {"k": 1},
            ValueError,
            "non-finite value nan at row 1, column 0",
        ),
    ],
)
def test_topk_bad_input(X, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cosine_topk(X, **kwargs)


def test_topk_sparse_strategy_is_cpu_only():
    from recsys_fast.backend import gpu_available

    if gpu_available():
        with pytest.raises(ValueError, match="CPU-only"):
            cosine_topk(sp.eye(4, format="csr"), 1, strategy="sparse", backend="gpu")
    else:
        from recsys_fast.errors import BackendUnavailableError

        with pytest.raises(BackendUnavailableError):
            cosine_topk(sp.eye(4, format="csr"), 1, backend="gpu")


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.parametrize("strategy", ["sparse", "dense"])
def test_ml100k_item_item_top50(ml100k_dir, strategy):
    df = pd.read_csv(
        ml100k_dir / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"]
    )
    R = build_user_item_csr(
        df.user_id.to_numpy() - 1, df.item_id.to_numpy() - 1, df.rating.to_numpy()
    )
    assert R.shape == (943, 1682) and R.nnz == 100_000
    items = R.T.tocsr()
    res = cosine_topk_result(items, 50, strategy=strategy)
    assert res.strategy == strategy
    out = res.matrix
    assert_topk_matches(out, items, 50, include_self=False)
    d = cosine_distances(R)  # user-user course matrix, float32
    exact = pairwise_distances(R.astype(np.float64), metric="cosine")
    np.testing.assert_allclose(d, exact, atol=1e-6, rtol=0)
    # sklearn's own float32 result is off the float64 one by 1.3e-6 on this data (sparse
    # route), so float32 agreement with it can only be asked to twice that
    np.testing.assert_allclose(d, pairwise_distances(R, metric="cosine"), atol=2e-6, rtol=0)
    d64 = cosine_distances(R, dtype=np.float64)
    np.testing.assert_allclose(d64, exact, atol=1e-12, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    n_rows=st.integers(1, 30),
    n_cols=st.integers(1, 30),
    nnz=st.integers(0, 300),
    seed=st.integers(0, 2**31 - 1),
    idx_dtype=st.sampled_from([np.int32, np.int64]),
)
def test_csr_numba_path_equals_the_sort_path(n_rows, n_cols, nnz, seed, idx_dtype):
    """The CPU counting-sort kernel and the backend-neutral sort path (used on GPU) agree."""
    from recsys_fast.kernels.interactions import _csr_by_sort

    r = np.random.default_rng(seed)
    rows = r.integers(0, n_rows, nnz).astype(idx_dtype)  # many duplicates at small shapes
    cols = r.integers(0, n_cols, nnz).astype(idx_dtype)
    vals = r.integers(1, 6, nnz).astype(np.float32)
    m = build_user_item_csr(rows, cols, vals, (n_rows, n_cols))
    ip, c, v = _csr_by_sort(np, rows.astype(np.int64), cols.astype(np.int64), vals, n_rows, n_cols, np.int32)
    np.testing.assert_array_equal(m.indptr, ip)
    np.testing.assert_array_equal(m.indices, c)
    np.testing.assert_array_equal(m.data, v)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_rows=st.integers(0, 80), n_cols=st.integers(1, 50),
       density=st.sampled_from([0.0, 0.05, 0.3, 0.9]), n_chunks=st.sampled_from([None, 1, 3, 64]))
def test_relabelled_arrays_equal_scipy_row_permutation_and_transpose(seed, n_rows, n_cols,
                                                                     density, n_chunks):
    """The sparse kernel's inputs: X[perm] (parallel copy) and its CSC with positions."""
    from recsys_fast.kernels import _topk_numba as nb

    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float32, rng=rng)
    X.sort_indices()
    perm = nb.popularity_order(X)
    indptr, indices, data = nb.permute_rows(X.indptr, X.indices, X.data, perm, n_chunks)
    ref = X[perm]
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == X.dtype
    _, arrays = nb.relabelled(X)
    colptr, rowidx, coldata, pos = arrays[3:]
    csc = ref.tocsc()
    csc.sort_indices()
    np.testing.assert_array_equal(colptr, csc.indptr)
    np.testing.assert_array_equal(rowidx, csc.indices)
    np.testing.assert_array_equal(coldata, csc.data)
    np.testing.assert_array_equal(rowidx[pos], np.repeat(np.arange(n_rows), np.diff(indptr)))
    np.testing.assert_array_equal(coldata[pos], data)


def test_deal_blocks_covers_every_block_once_with_even_loads():
    from recsys_fast.kernels._topk_rows import deal_blocks

    rng = np.random.default_rng(5)
    cost = (rng.pareto(1.2, 500) * 1000).astype(np.int64)  # a few costly blocks, many light
    for n_parts in (1, 2, 3, 7):
        parts = deal_blocks(cost, n_parts)
        assert len(parts) == n_parts
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(cost.size))
        loads = [int(cost[p].sum()) for p in parts]
        assert max(loads) - min(loads) <= cost.max()  # the LPT bound
        for p in parts:
            assert (np.diff(cost[p]) <= 0).all()  # costliest first


@pytest.mark.parametrize("n_parts", [1, 2, 3, 5])
@pytest.mark.parametrize("include_self", [False, True])
def test_pair_tasks_merge_to_the_single_process_result(n_parts, include_self):
    """The dask backend's pair form, run here: every split of the blocks merges to the same
    top-k, index for index (ties included)."""
    from recsys_fast.backend import CPU
    from recsys_fast.kernels._topk_rows import RowTopk, merge_pair_heaps, pair_topk_task

    D = random_matrix(11, 300, 25, 0.25, np.float32, ratings=True).toarray()  # many ties
    D[3] = 0
    X = sp.csr_matrix(D)
    ref = cosine_topk(X, 7, include_self=include_self, strategy="sparse")
    Xn = core.normalized(core.canonical(X), CPU, np.dtype(np.float32))
    plan = RowTopk(Xn, 7, include_self, "sparse", 1)
    sets = [pair_topk_task(plan, p, n_parts) for p in range(n_parts)]
    got = merge_pair_heaps(plan._prepare()[0], sets, 7)
    assert np.array_equal(got.indptr, ref.indptr)
    assert np.array_equal(got.indices, ref.indices)
    assert np.array_equal(got.data, ref.data)


@pytest.mark.parametrize("strategy, knob", [("sparse", {"block_rows": 64}),
                                            ("spmm", {"tf32": True}),
                                            ("spgemm", {"bf16": True}),
                                            ("sparse", {"tf32": False, "block_rows": 8})])
def test_a_knob_a_strategy_does_not_take_is_an_error(strategy, knob):
    X = random_matrix(2, 30, 20, 0.2, np.float32, ratings=True)
    with pytest.raises(ValueError, match=f"does not apply to strategy='{strategy}'"):
        cosine_topk(X, 3, strategy=strategy, **knob)
    cosine_topk(X, 3, strategy="auto", block_rows=8)  # auto: applies if a blocked one runs


def test_strategy_objects_are_the_named_strategies_with_their_knobs():
    """``strategy=Dense(block_rows=8)`` is ``strategy="dense", block_rows=8``; each class takes
    only its own knobs; knobs beside an object are refused, not merged or ignored."""
    from recsys_fast.kernels.topk_strategies import (
        STRATEGIES,
        Auto,
        Dense,
        Sparse,
        Spgemm,
        Spmm,
        strategy_for,
    )

    X = random_matrix(3, 70, 40, 0.15, np.float32, ratings=True)
    for obj, name, knobs in ((Sparse(), "sparse", {}), (Dense(block_rows=8), "dense",
                             {"block_rows": 8}), (Spmm(block_rows=16), "spmm",
                             {"block_rows": 16}), (Spgemm(block_rows=5), "spgemm",
                             {"block_rows": 5})):
        assert strategy_for(name, **knobs) == obj
        by_obj = cosine_topk_result(X, 6, strategy=obj)
        by_name = cosine_topk_result(X, 6, strategy=name, **knobs)
        assert by_obj.strategy == by_name.strategy == name
        assert (by_obj.matrix != by_name.matrix).nnz == 0
    assert STRATEGIES == ("auto", "sparse", "dense", "spmm", "spgemm")
    assert Auto(block_rows=8).pick("spmm") == Spmm(block_rows=8)
    assert Auto(block_rows=8).pick("sparse") == Sparse()
    with pytest.raises(TypeError):
        Sparse(block_rows=8)
    with pytest.raises(ValueError, match="block_rows"):
        Dense(block_rows=0)
    with pytest.raises(ValueError, match="set it on the strategy object"):
        cosine_topk(X, 6, strategy=Dense(), block_rows=8)
    with pytest.raises(ValueError, match="strategy must be one of"):
        cosine_topk(X, 6, strategy="blocked")
