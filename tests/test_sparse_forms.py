"""The two forms of the ``sparse`` strategy (blocked, rows) and the race that picks one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_fast.backend import CPU
from recsys_fast.kernels import _topk_sparse, core, cosine_topk, warmup
from recsys_fast.kernels._topk_fullrows import RowsTopk
from recsys_fast.kernels.topk_strategies import Auto, Sparse
from tests.test_kernels_similarity import assert_topk_matches, random_matrix


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_self", [False, True])
def test_rows_form_select_with_close_values_and_ties(dtype, include_self):
    """Similarities packed into one radix bin (near-identical rows), exact duplicates (ties at
    the k-th value) and rows with fewer candidates than k: the rows form keeps the exact
    top-k, bit for bit the blocked form's."""
    rng = np.random.default_rng(3)
    base = rng.random(40) + 0.5
    dense = base + 1e-4 * rng.random((300, 40))
    dense[::7] = dense[0]  # exact duplicates: equal similarities, ties broken by column
    dense[rng.random(dense.shape) < 0.3] = 0
    dense[250:] = 0
    dense[250:, :2] = rng.random((50, 2))  # a group with few features: short candidate lists
    X = sp.csr_matrix(dense.astype(dtype))
    k = 17
    rows = cosine_topk(X, k, include_self=include_self, strategy=Sparse(form="rows"), dtype=dtype)
    blocked = cosine_topk(X, k, include_self=include_self, strategy=Sparse(form="blocked"),
                          dtype=dtype)
    assert_topk_matches(rows, X, k, include_self, atol=1e-5 if dtype == np.float32 else 1e-12)
    _same(rows, blocked)


def test_rows_form_in_any_split_gives_the_one_call_result(rng):
    X = random_matrix(8, 700, 90, 0.06, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    whole = RowsTopk(Xn, 9, True, 2).run_all()
    run = RowsTopk(Xn, 9, True, 2)
    for part in np.array_split(rng.permutation(run.order), [1, 5, 60, 300]):
        run.run(part)
    assert run.done.all()
    _same(run.finish(), whole)
    assert_topk_matches(whole, X, 9, include_self=True)


def test_a_form_is_checked():
    with pytest.raises(ValueError, match="form must be one of"):
        Sparse(form="heaps")
    with pytest.raises(ValueError, match="form must be one of"):
        Auto(form="")
    with pytest.raises(ValueError, match="form must be one of"):
        _topk_sparse.sparse_topk(sp.csr_matrix(np.eye(3)), 1, False, 1, "fast")


def _clocked(monkeypatch, per_unit: dict) -> list:
    """Each form's ``run`` advances a fake clock by ``per_unit[form]`` seconds per unit of
    work (its units' cost, plus one); returns the (form, units) of every call."""
    for dt in (np.float32, np.float64):
        _topk_sparse._load_forms(np.dtype(dt))  # the forms' first calls, not on the clock
    now, calls = [0.0], []
    for cls in (_topk_sparse.SparseTopk, RowsTopk):
        real = cls.run

        def run(self, units, real=real):
            calls.append((self.form, int(units.size)))
            now[0] += per_unit[self.form] * float((self.cost[units] + 1.0).sum())
            real(self, units)

        monkeypatch.setattr(cls, "run", run)
    monkeypatch.setattr(_topk_sparse.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(_topk_sparse, "RACED", _topk_sparse.LruChoices())
    return calls


@pytest.mark.parametrize("faster", ["blocked", "rows"])
def test_the_race_finishes_the_faster_form_and_spends_little_on_the_other(monkeypatch, faster):
    """With fixed rates the form whose whole call extrapolates faster wins, its raced units
    kept (every unit runs once); the loser stops once it is measured, having run a small
    share of its units; the result equals either form's."""
    X = random_matrix(4, 3000, 400, 0.02, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    assert _topk_sparse.rows_may_win(Xn, _topk_sparse.SparseTopk(Xn, 10, False, 2).cost)
    probe_b = _topk_sparse.SparseTopk(Xn, 10, False, 2)
    probe_r = RowsTopk(Xn, 10, False, 2)
    work = {"blocked": float((probe_b.cost + 1.0).sum()), "rows": float((probe_r.cost + 1.0).sum())}
    # rates giving a whole call of 1 s for the faster form, 3 s for the other
    per_unit = {f: (1.0 if f == faster else 3.0) / work[f] for f in work}
    calls = _clocked(monkeypatch, per_unit)
    run, record = _topk_sparse.sparse_run(Xn, 10, False, 2)
    assert run.form == faster
    assert record["race"][faster]["total_s"] == pytest.approx(1.0)
    loser = "rows" if faster == "blocked" else "blocked"
    assert record["race"][loser]["total_s"] == pytest.approx(3.0)
    out = run.finish()
    mine = [n for f, n in calls if f == faster]
    assert sum(mine) == run.n_blocks  # the race's units were kept, none run twice
    lost = sum(n for f, n in calls if f == loser)
    assert 0 < lost <= run.n_blocks  # measured, then dropped
    assert record["race"][loser]["raced_s"] <= 0.1 * 3.0
    _same(out, cosine_topk(X, 10, strategy=Sparse(form=loser), n_threads=2))


def test_the_race_is_run_once_per_input(monkeypatch):
    """A later sparse call on the same matrix runs the kept form without a race."""
    X = random_matrix(5, 2500, 300, 0.02, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    assert _topk_sparse.rows_may_win(Xn, _topk_sparse.SparseTopk(Xn, 6, False, 2).cost)
    calls = _clocked(monkeypatch, {"blocked": 1e-9, "rows": 1e-6})
    first, rec = _topk_sparse.sparse_run(Xn, 6, False, 2)
    assert first.form == "blocked" and "race" in rec
    raced = {f for f, _ in calls}
    assert raced == {"blocked", "rows"}
    calls.clear()
    again, rec = _topk_sparse.sparse_run(Xn, 6, False, 2)
    assert again.form == "blocked" and rec.get("kept") and not calls
    _topk_sparse.sparse_run(Xn, 7, False, 2)  # another k: raced afresh
    assert {f for f, _ in calls} == {"blocked", "rows"}


def test_small_inputs_dense_products_and_big_heaps_skip_the_race(monkeypatch):
    """Under RACE_MIN_ROWS rows the blocked form runs; so it does where every row pair costs
    a multiply-add or more (S dense); where one heap set per thread does not fit, the rows
    form (one output set) runs."""
    calls = _clocked(monkeypatch, {"blocked": 1e-9, "rows": 1e-9})
    X = random_matrix(6, 200, 50, 0.1, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    assert _topk_sparse.sparse_run(Xn, 5, False, 2)[0].form == "blocked"
    dense_s = random_matrix(7, 2500, 40, 0.3, np.float32, ratings=True)  # 750 rows a column
    Dn = core.normalized(dense_s, CPU, np.float32)
    assert not _topk_sparse.rows_may_win(Dn, _topk_sparse.SparseTopk(Dn, 5, False, 2).cost)
    assert _topk_sparse.sparse_run(Dn, 5, False, 2)[0].form == "blocked"
    monkeypatch.setattr(_topk_sparse, "sparse_half", lambda *a: False)
    assert _topk_sparse.sparse_run(Xn, 5, False, 2)[0].form == "rows"
    assert not calls


def _items(inter):
    """The items x users CSR of a rating set."""
    from recsys_fast.kernels import build_user_item_csr

    return build_user_item_csr(inter.user_idx, inter.item_idx, inter.values,
                               inter.shape).T.tocsr()


def _ratings_items(folder, loader):
    from recsys_fast import data

    return _items(getattr(data, loader)(folder))


def _run_in_order(Xn, k, include_self, order_pick):
    from recsys_fast.kernels import _topk_blocked as bl

    run = _topk_sparse.SparseTopk(Xn, k, include_self, 2)
    run.run(bl.block_orders(run.cost, 2)[order_pick])
    return run.finish()


@pytest.mark.parametrize("include_self", [False, True])
def test_both_block_orders_give_the_exact_top_k(include_self):
    """Costliest-first and cheapest-first runs, two threads sharing the rows' thresholds, keep
    the same top-k bit for bit, equal to the rows form and to the dense reference (ties
    broken by column) on random ratings with duplicated rows."""
    X = random_matrix(11, 900, 120, 0.05, np.float32, ratings=True).tolil()
    X[100:140] = X[0]  # ties at the k-th value
    X = X.tocsr()
    Xn = core.normalized(X, CPU, np.float32)
    first, last = (_run_in_order(Xn, 12, include_self, o) for o in (0, 1))
    _same(first, last)
    _same(first, RowsTopk(Xn, 12, include_self, 2).run_all())
    assert_topk_matches(first, X, 12, include_self)


def test_both_block_orders_agree_on_real_ml100k(ml100k_dir):
    items = _ratings_items(ml100k_dir, "load_ml100k")
    Xn = core.normalized(items, CPU, np.float32)
    first, last = (_run_in_order(Xn, 50, False, o) for o in (0, 1))
    _same(first, last)
    assert_topk_matches(first, items, 50, False)


def test_probe_replays_the_kernels_arrival_order():
    """The probe's push count for a row equals a heap replay of that row's offers sorted by
    (position of the block of min(row, partner), partner), the blocked kernel's arrival order."""
    import heapq

    from recsys_fast.kernels import _topk_blocked as bl
    from recsys_fast.kernels import _topk_numba as nb

    X = random_matrix(5, 700, 60, 0.08, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    perm, arrays = nb.relabelled(Xn)
    indptr, indices, data = arrays[:3]
    R = sp.csr_matrix((data, indices, indptr), shape=Xn.shape)
    S = (R @ R.T).toarray()
    cost = bl.block_costs(indptr, indices, arrays[3], arrays[6])
    orders = np.stack(bl.block_orders(cost, 2))
    rows = np.array([3, 100, 350, 699])
    k = 9
    got = bl._probe_pushes(*arrays[:6], perm.astype(np.int32), rows, orders, k)
    for o, order in enumerate(orders):
        pos = np.argsort(order)
        for a, r in enumerate(rows):
            partners = [p for p in range(S.shape[0]) if p != r and S[r, p] > 0]
            partners.sort(key=lambda p: (pos[min(p, r) // bl.LANES], p))
            heap, pushes = [], 0  # min-heap of (value, -label): the root is the worst kept
            for p in partners:
                item = (np.float32(S[r, p]), -int(perm[p]))
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
                else:
                    continue
                pushes += 1
            assert got[o, a] == pushes


def test_order_choice_follows_where_the_neighbours_are(ml_latest_small_dir):
    """On ml-latest-small's items the long tail's best neighbours are other long-tail items:
    cheapest-first; on the generator's items (popularity alone, no item structure) they are
    the popular ones: costliest-first. The probe counts, so both calls agree."""
    from recsys_fast.data import synthetic

    real = core.normalized(_ratings_items(ml_latest_small_dir, "load_movielens"), CPU,
                           np.float32)
    synth = core.normalized(_items(synthetic.generate("1m", seed=0)), CPU, np.float32)
    for Xn, want in ((real, "cheapest-first"), (synth, "costliest-first")):
        records = [_topk_sparse.SparseTopk(Xn, 50, False, 2).order_record for _ in range(2)]
        assert records[0] == records[1]
        assert records[0]["order"] == want


def test_probe_rows_fit_their_budget():
    """The probe spends at most its budget of multiply-adds, with fewer rows where rows are
    dense, and none where fewer than PROBE_MIN_ROWS fit (the order is then costliest first)."""
    from recsys_fast.kernels import _topk_blocked as bl
    from recsys_fast.kernels import _topk_numba as nb

    X = random_matrix(2, 4000, 300, 0.1, np.float32, ratings=True)
    Xn = core.normalized(X, CPU, np.float32)
    _, arrays = nb.relabelled(Xn)
    indptr, indices, colptr = arrays[0], arrays[1], arrays[3]
    col_len = np.diff(colptr).astype(np.float64)
    row_cost = nb.row_costs(indptr, indices, colptr)
    total = float(col_len @ col_len)
    sizes = []
    for share in (1.0, 0.005, 0.001, 1e-6):
        rows = bl.probe_rows(indptr, indices, col_len, share * total)
        assert row_cost[rows].sum() <= share * total
        assert rows.size == 0 or rows.size >= bl.PROBE_MIN_ROWS
        sizes.append(rows.size)
    assert sizes[0] == bl.PROBE_ROWS and sizes[-1] == 0 and sizes == sorted(sizes, reverse=True)
    run = _topk_sparse.SparseTopk(Xn, 10, False, 2)
    assert run.order_record["order"] in ("costliest-first", "cheapest-first")
