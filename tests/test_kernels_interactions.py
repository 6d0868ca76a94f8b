"""build_user_item_csr's CPU paths (parallel bitmap merge, stable row scatter, wide-matrix
counting sort) against the course's dense fill and an independent numpy reference."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_fast.kernels import _csr_rows, build_user_item_csr, interactions
from recsys_fast.naive.collaborative import build_data_matrix

THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})


def numpy_last_wins(rows, cols, vals, shape, dtype=np.float32):
    """Reference CSR by one lexsort: entries ordered by (row, col, input position); the last
    of each equal (row, col) run is kept."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    order = np.lexsort((np.arange(rows.size), cols, rows))
    r, c, v = rows[order], cols[order], np.asarray(vals)[order]
    keep = np.ones(r.size, bool)
    keep[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    r, c, v = r[keep], c[keep], v[keep]
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.add.at(indptr, r + 1, 1)
    return np.cumsum(indptr), c, v.astype(dtype)


def assert_same_csr(m, ref):
    indptr, indices, data = ref
    assert m.has_canonical_format
    np.testing.assert_array_equal(m.indptr, indptr)
    np.testing.assert_array_equal(m.indices, indices)
    np.testing.assert_array_equal(m.data, data)


@pytest.fixture(params=THREADS, ids=lambda n: f"threads{n}")
def threads(request, monkeypatch):
    """The parallel bitmap path at any size (the inputs here are below PARALLEL_MIN_NNZ)."""
    monkeypatch.setattr(interactions, "PARALLEL_MIN_NNZ", 0)
    monkeypatch.setattr(interactions, "_n_threads", lambda: request.param)  # whatever the load
    before = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(before)


@pytest.mark.parametrize("order", ["random", "rows"])
def test_small_inputs_take_the_serial_sort_and_agree(rng, order):
    shape = (300, 400)
    rows, cols, vals = _triples(rng, 20_000, shape, order)
    assert 20_000 < interactions.PARALLEL_MIN_NNZ
    assert_same_csr(build_user_item_csr(rows, cols, vals, shape),
                    numpy_last_wins(rows, cols, vals, shape))


def _triples(rng, n, shape, order):
    rows = rng.integers(0, shape[0], n).astype(np.int32)
    cols = rng.integers(0, shape[1], n).astype(np.int32)
    vals = rng.integers(1, 6, n).astype(np.float32)
    if order == "rows":  # the harness data: sorted by user, items in time order
        o = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[o], cols[o], vals[o]
    return rows, cols, vals


@pytest.mark.parametrize("order", ["random", "rows"])
@pytest.mark.parametrize(
    "shape",
    [(40, 30), (1, 50), (200, 5000), (7, 1), (300, 20_000)],
    ids=["dense-dups", "single-row", "bitmap-summary", "single-col", "wide-summary"],
)
def test_parallel_merge_equals_numpy_reference(threads, rng, order, shape):
    rows, cols, vals = _triples(rng, 3000, shape, order)
    m = build_user_item_csr(rows, cols, vals, shape)
    assert m.shape == shape and m.dtype == np.float32
    assert m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert_same_csr(m, numpy_last_wins(rows, cols, vals, shape))


@pytest.mark.parametrize("order", ["random", "rows"])
def test_parallel_merge_equals_naive_fill(threads, rng, order):
    shape = (60, 45)
    rows, cols, vals = _triples(rng, 2500, shape, order)  # ~60 % of the pairs repeat
    vals = vals + rng.random(vals.size).astype(np.float32)  # tell duplicates apart
    frame = pd.DataFrame({"user_id": rows + 1, "item_id": cols + 1, "rating": vals})
    dense = build_data_matrix(frame, shape=shape)
    m = build_user_item_csr(rows, cols, vals, shape, dtype=np.float64)
    np.testing.assert_array_equal(m.toarray(), dense)


def test_empty_rows_single_entries_and_empty_input(threads):
    # rows 0, 2, 5 empty; row 1 one entry; row 3 a duplicate; row 4 reversed columns
    rows = np.array([1, 3, 3, 4, 4, 4], np.int32)
    cols = np.array([2, 0, 0, 5, 3, 1], np.int32)
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32)
    m = build_user_item_csr(rows, cols, vals, (6, 6))
    np.testing.assert_array_equal(m.indptr, [0, 0, 1, 1, 2, 5, 5])
    np.testing.assert_array_equal(m.indices, [2, 0, 1, 3, 5])
    np.testing.assert_array_equal(m.data, [1.0, 3.0, 6.0, 5.0, 4.0])
    e = build_user_item_csr(np.array([], np.int32), np.array([], np.int32),
                            np.array([], np.float32), (3, 4))
    assert e.nnz == 0 and e.shape == (3, 4)
    np.testing.assert_array_equal(e.indptr, [0, 0, 0, 0])


def test_equals_scipy_without_duplicates(threads, rng):
    shape = (500, 800)
    flat = rng.choice(shape[0] * shape[1], 20_000, replace=False)
    rows, cols = (flat // shape[1]).astype(np.int32), (flat % shape[1]).astype(np.int32)
    vals = rng.random(flat.size).astype(np.float32)
    m = build_user_item_csr(rows, cols, vals, shape)
    ref = sp.coo_matrix((vals, (rows, cols)), shape=shape).tocsr()
    ref.sort_indices()
    np.testing.assert_array_equal(m.indptr, ref.indptr)
    np.testing.assert_array_equal(m.indices, ref.indices)
    np.testing.assert_array_equal(m.data, ref.data)


def test_wide_matrix_uses_counting_sort_and_agrees(rng):
    shape = (50, 10**7)  # scratch per column would dwarf the 400 entries
    assert not _csr_rows.fits_bitmap(shape[0], shape[1], 400)
    rows, cols, vals = _triples(rng, 400, (50, 40), "random")
    cols = (cols.astype(np.int64) * 250_000 + 7).astype(np.int64)
    m = build_user_item_csr(rows, cols, vals, shape)
    assert_same_csr(m, numpy_last_wins(rows, cols, vals, shape))


@pytest.mark.parametrize("dtype", [np.float64, np.int16])
def test_other_dtypes_and_int64_indices(rng, dtype):
    rows, cols, vals = _triples(rng, 1000, (30, 20), "random")
    m = build_user_item_csr(rows.astype(np.int64), cols.astype(np.int64),
                            vals.astype(np.float64), (30, 20), dtype=dtype)
    assert m.dtype == dtype
    assert_same_csr(m, numpy_last_wins(rows, cols, vals, (30, 20), dtype))


def _sorted_big(rng, n=50_000, shape=(400, 300)):
    return _triples(rng, n, shape, "rows")


@pytest.mark.parametrize(
    ("field", "at", "bad", "exc", "match"),
    [
        ("cols", 31_337, 300, ValueError, r"item_idx\[31337\] = 300 is out of range"),
        ("cols", 49_999, -2, ValueError, r"item_idx\[49999\] = -2 is negative"),
        ("rows", 12_345, -1, ValueError, r"user_idx\[12345\] = -1 is negative"),
        ("rows", 40_000, 400, ValueError, r"user_idx\[40000\] = 400 is out of range"),
        ("vals", 777, np.nan, ValueError, r"values\[777\] = nan is not finite"),
        ("vals", 30_000, -np.inf, ValueError, r"values\[30000\] = -inf is not finite"),
    ],
)
def test_bad_entry_deep_in_a_large_input_is_named(threads, rng, field, at, bad, exc, match):
    rows, cols, vals = _sorted_big(rng)
    arrays = {"rows": rows, "cols": cols, "vals": vals}
    arrays[field][at] = bad
    with pytest.raises(exc, match=match):
        build_user_item_csr(rows, cols, vals, (400, 300))


def test_float64_values_overflowing_float32_are_refused(rng):
    rows, cols, vals = _sorted_big(rng)
    big = vals.astype(np.float64)
    big[123] = 1e300
    with pytest.raises(ValueError, match="overflows dtype float32"):
        build_user_item_csr(rows, cols, big, (400, 300))


def test_one_thread_only_when_oversubscribed(monkeypatch):
    import os

    before = numba.get_num_threads()
    numba.set_num_threads(max(THREADS))
    try:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
        assert interactions._n_threads() == 1  # oversubscribed: one thread
        monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 0.0, 0.0))  # busy, not swamped
        assert interactions._n_threads() == max(THREADS)
    finally:
        numba.set_num_threads(before)


def test_row_chunks_balance_entries():
    indptr = np.array([0, 10, 10, 11, 50, 100], np.int64)
    b = _csr_rows.row_chunks(indptr, 2)
    assert b[0] == 0 and b[-1] == 5 and list(b) == sorted(b)
    assert abs(int(indptr[b[1]]) - 50) <= 39  # the split row holds 39 entries
    assert list(_csr_rows.row_chunks(indptr, 1)) == [0, 5]


def test_rows_out_of_order_anywhere_are_sorted_first(threads, rng):
    """One row index stepping back, at every position (chunk edges included), sends the
    one-pass merge of ordered rows to the scatter path; the result is still exact."""
    shape = (12, 9)
    rows, cols, vals = _triples(rng, 40, shape, "rows")
    vals = vals + rng.random(vals.size).astype(np.float32)
    for at in np.flatnonzero(np.diff(rows)):  # swap the two entries around each row step
        r = rows.copy()
        r[at], r[at + 1] = r[at + 1], r[at]
        c = cols.copy()
        c[at], c[at + 1] = c[at + 1], c[at]
        v = vals.copy()
        v[at], v[at + 1] = v[at + 1], v[at]
        assert_same_csr(build_user_item_csr(r, c, v, shape), numpy_last_wins(r, c, v, shape))
