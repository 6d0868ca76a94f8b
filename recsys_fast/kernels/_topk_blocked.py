"""The blocked form of ``cosine_topk(strategy="sparse")``: rows in blocks of ``LANES``.

Row by row, row i of S = X @ X.T is computed by streaming, for each column c of row i, the
tail of column c (the rows j > i sharing c) and scattering ``x_ic * x_jc`` into an
accumulator. Every multiply-add then costs a load of ``(j, x_jc)`` from a column that, at the
10M-rating scale, is far out of cache: the kernel is bound by those loads, not by arithmetic.

Here ``LANES`` consecutive rows (after the popularity relabelling, rows of similar degree
sharing most of their columns) are computed together. The block's columns are merged into one
ascending list, each with a vector of the block rows' values (zero where a row lacks the
column); each column tail is streamed once per block, and each loaded ``(j, x_jc)`` updates a
``LANES``-wide slice of an interleaved accumulator ``acc[j * LANES + b]`` (one SIMD multiply
and add). For hot rows the loads fall by up to ``LANES`` times; a column a block row lacks adds
``0 * x_jc``, which changes no sum.

Results are bit-identical to the rows form (:mod:`._topk_fullrows`): each S[i, j] is the sum
of the same products in the same (ascending column) order, multiplied and added separately (no FMA contraction), and
each pair (i, j > i) is computed once and offered to both rows' heaps with the same tie rule,
whose kept set does not depend on the arrival order. The column tail starts after the block's
first row holding the column, so a block row also receives sums for columns j <= itself inside
its block; those are discarded.

Blocks run in an order (:func:`choose_order`: costliest first, or cheapest first after the
heaviest, whichever makes fewer offers enter a heap on a probe of the rows), and each goes to
the next thread that asks for one (an atomic counter): a thread slowed by another process on
its core (or by blocks costlier than their count of entries says) then takes fewer blocks,
where a fixed round-robin deal left the other thread idle at the end. numba's own dynamic
schedule (``parallel_chunksize(1)``) measured slower, about one thread busy. Each thread owns
a full set of heaps (pairs reach any row), merged at the end; the threads share each row's
admission threshold (:func:`_offer_shared`). The kept set does not depend on which thread
computed a pair, nor on the order, so the result is the same whichever thread took which
block. Per thread: the heaps, an (n_rows, LANES) accumulator, a slot of LANES block values per
column of a block (at most its entries, ``e``) and three arrays over the features,
``n_threads * (n_rows * (k * (itemsize + 4) + LANES * itemsize + 16) + e * LANES * itemsize +
n_features * 16)`` bytes in all.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from recsys_fast.kernels._topk_numba import _heap_push, _worse, merge_heap_sets

LANES = 16  # rows per block: one 64-byte cache line of float32 accumulators per column j


@intrinsic
def _axpy_row(typingctx, acc, j, w, y):
    """``acc[j, :] += w * y`` as one LANES-wide vector multiply, then add (numba leaves LLVM's
    SLP vectorizer off, and a constant 8-trip loop is unrolled before the loop vectorizer
    sees it). ``acc``: C-ordered (n, LANES); ``w``: LANES values. Lane by lane the same
    rounding as the scalar ``acc[j, b] += w[b] * y`` (no FMA contraction)."""
    sig = types.void(acc, j, w, y)

    def codegen(context, builder, sig, args):
        vec, align, ptr = _row_pointer(context, builder, sig.args[0], args[0], sig.args[1],
                                       args[1])
        old = builder.load(ptr)
        old.align = align
        wa = context.make_array(sig.args[2])(context, builder, args[2])
        wv = builder.load(builder.bitcast(wa.data, vec.as_pointer()))
        wv.align = align
        store = builder.store(builder.fadd(old, builder.fmul(wv, _splat(builder, vec, args[3]))),
                              ptr)
        store.align = align
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _take_row(typingctx, acc, j, thr, t0, tj):
    """The bit mask of the lanes b of ``acc[j, :]`` worth offering: ``s > 0`` and
    ``s >= thr[t0 + b]`` (row b's heap) or ``s >= tj`` (row j's heap), ``s = acc[j, b]``.
    A threshold is at most its row's final k-th value, so no lane of the top-k is masked."""
    sig = types.uint64(acc, j, thr, t0, tj)

    def codegen(context, builder, sig, args):
        vec, align, ptr = _row_pointer(context, builder, sig.args[0], args[0], sig.args[1],
                                       args[1])
        s = builder.load(ptr)
        s.align = align
        zero = ir.Constant(vec, None)
        ta = context.make_array(sig.args[2])(context, builder, args[2])
        tp = builder.bitcast(builder.gep(ta.data, [args[3]]), vec.as_pointer())
        t = builder.load(tp)
        t.align = align
        keep = builder.and_(
            builder.fcmp_ordered(">", s, zero),
            builder.or_(builder.fcmp_ordered(">=", s, t),
                        builder.fcmp_ordered(">=", s, _splat(builder, vec, args[4]))))
        bits = builder.bitcast(keep, ir.IntType(LANES))
        return builder.zext(bits, ir.IntType(64))

    return sig, codegen


@intrinsic
def _next_index(typingctx, counter):
    """Atomically ``counter[0] += 1``; the value before (work handed out one item at a time to
    whichever thread asks first)."""
    sig = types.int64(counter)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", a.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


def _row_pointer(context, builder, acc_t, acc, j_t, j):
    """(vector type, alignment, pointer to row j) of a C-ordered (n, LANES) array."""
    a = context.make_array(acc_t)(context, builder, acc)
    vec = ir.VectorType(context.get_value_type(acc_t.dtype), LANES)
    i64 = ir.IntType(64)
    if j.type.width < 64:
        j = builder.sext(j, i64) if j_t.signed else builder.zext(j, i64)
    ptr = builder.gep(a.data, [builder.mul(j, ir.Constant(i64, LANES))])
    return vec, acc_t.dtype.bitwidth // 8, builder.bitcast(ptr, vec.as_pointer())


def _splat(builder, vec, x):
    i32 = ir.IntType(32)
    v = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(i32, 0))
    return builder.shuffle_vector(v, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))


@njit(cache=True, inline="always")
def _offer_shared(hv, hi, hn, thr, h, row, k, v, j):
    """Offer (v, j) to heap h (row ``row`` of one thread's heap set). ``thr[row]``, shared by
    the threads, rejects most offers without touching the heap arrays, which are n_rows * k
    long and do not stay in cache: it is the root of some thread's full heap of the row,
    a value the row's final k-th neighbour is at least. Threads read and write it unlocked;
    a lost write leaves a lower such value (more offers get through), never a wrong one."""
    if v < thr[row]:
        return
    size = _heap_push(hv, hi, h * k, hn[h], k, v, j)
    hn[h] = size
    if size == k and hv[h * k] > thr[row]:
        thr[row] = hv[h * k]


@njit(cache=True)
def block_costs(indptr, indices, colptr, pos):
    """Column-tail entries each block streams (its scheduling weight), per block of LANES."""
    n = indptr.size - 1
    n_blocks = (n + LANES - 1) // LANES
    cost = np.zeros(n_blocks, dtype=np.int64)
    seen = np.full(colptr.size - 1, -1, dtype=np.int64)
    for blk in range(n_blocks):
        s = 0
        for r in range(blk * LANES, min(n, (blk + 1) * LANES)):
            for p in range(indptr[r], indptr[r + 1]):
                c = indices[p]
                if seen[c] != blk:
                    seen[c] = blk
                    s += colptr[c + 1] - pos[p] - 1
        cost[blk] = s
    return cost


def block_orders(cost: np.ndarray, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """The two orders :func:`choose_order` weighs: costliest block first, and cheapest first
    after the blocks heavier than a share ``1 / (8 * n_threads)`` of the work (those run first,
    costliest first: a heavy block left to the end would keep one thread busy alone)."""
    desc = np.argsort(-cost, kind="stable").astype(np.int64)
    heavy = cost[desc] > cost.sum() / (8 * max(1, n_threads))
    return desc, np.concatenate([desc[heavy], desc[~heavy][::-1]])


@njit(cache=True, inline="always")
def _replay_pushes(acc, labels, r, order, k, hv, hi):
    """How many of row r's offers (``acc``: its row of S; positive entries offered) enter a
    top-k heap kept by the kernel's tie rule, arriving as the blocked kernel offers them with
    its blocks run in ``order``: partner p when the block of ``min(r, p)`` runs, ascending p
    within a block (``hv``, ``hi``: k slots of scratch)."""
    n = acc.size
    own = r // LANES
    size = 0
    pushes = 0
    for blk in order:
        if blk > own:
            continue
        stop = n if blk == own else min(n, (blk + 1) * LANES)
        for p in range(blk * LANES, stop):
            v = acc[p]
            if v <= 0 or p == r:
                continue
            j = labels[p]
            if size == k and not _worse(hv[0], hi[0], v, j):
                continue
            size = _heap_push(hv, hi, 0, size, k, v, j)
            pushes += 1
    return pushes


@njit(cache=True, parallel=True)
def _probe_pushes(indptr, indices, data, colptr, rowidx, coldata, labels, rows, orders, k):
    """Heap pushes of each row of ``rows`` under each block order (the rows of ``orders``):
    the row of S computed exactly, its offers replayed (:func:`_replay_pushes`). Returns
    (n_orders, rows.size) counts."""
    n = indptr.size - 1
    out = np.zeros((orders.shape[0], rows.size), dtype=np.int64)
    for a in prange(rows.size):
        r = np.int64(rows[a])
        acc = np.zeros(n, dtype=data.dtype)
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            x = data[p]
            for pp in range(colptr[c], colptr[c + 1]):
                acc[rowidx[pp]] += x * coldata[pp]
        hv = np.empty(k, dtype=data.dtype)
        hi = np.empty(k, dtype=np.int32)
        for o in range(orders.shape[0]):
            out[o, a] = _replay_pushes(acc, labels, r, orders[o], k, hv, hi)
    return out


PROBE_ROWS = 32  # most rows whose offers choose_order replays (evenly spaced over the labels)
PROBE_SHARE = 0.02  # most the probe spends, as a share of the kernel's modelled work
# The kernel's work in the probe's multiply-adds (a scalar scatter each, ~1.5 ns of thread time
# here): ~2 a streamed entry (a LANES-wide update, ~2.3 ns), ~10 a row pair (its read-back and
# offers, ~15 ns where S is dense and pushes dominate; measured on ML-100K and near-dense 1m)
PROBE_STREAMED_UNITS = 2.0
PROBE_PAIR_UNITS = 10.0
PROBE_MIN_ROWS = 4  # fewer rows fit that share: no probe, costliest first


def probe_rows(indptr, indices, col_len: np.ndarray, budget: float) -> np.ndarray:
    """Rows for :func:`choose_order`: the middle row of each of up to :data:`PROBE_ROWS` equal
    strata of the labels (at most 1 in 64 rows), as many as fit ``budget`` multiply-adds (a
    row's: the lengths of its columns, ``col_len``); empty when fewer than
    :data:`PROBE_MIN_ROWS` fit."""
    n = indptr.size - 1
    n_probe = min(PROBE_ROWS, n // 64)
    for _ in range(4):
        if n_probe < PROBE_MIN_ROWS:
            break
        rows = ((np.arange(n_probe) + 0.5) * (n / n_probe)).astype(np.int64)
        spent = sum(float(col_len[indices[indptr[r]:indptr[r + 1]]].sum()) for r in rows)
        if spent <= budget:
            return rows
        n_probe = min(n_probe - 1, int(n_probe * budget / spent))
    return np.empty(0, dtype=np.int64)


def choose_order(arrays, labels, cost, k: int, n_threads: int):
    """``(order, record)``: of :func:`block_orders`, the order in which fewer offers enter a
    heap, counted on the exact rows of S of a few rows (:func:`probe_rows`, within
    :data:`PROBE_SHARE` of the kernel's modelled work: its streamed entries and row pairs) and
    replayed in the order the blocked
    kernel offers them: row r hears from a partner p when the block of ``min(r, p)`` runs.
    Where S is dense, heap pushes, with their cache misses, are most of the kernel's time; how
    many depends on whether a row's best neighbours arrive before its worse ones, and that
    differs by data: on rating data cosine often ranks a long-tail item's neighbours highest
    among other long-tail items, whose blocks the costliest-first order runs last. A count, not
    a timing: the same choice in every process. ``arrays``: the relabelled CSR and CSC
    (:func:`._topk_numba.relabelled`)."""
    indptr, indices, data, colptr, rowidx, coldata, _ = arrays
    orders = block_orders(cost, n_threads)
    n = indptr.size - 1
    if k >= n - 1:
        return orders[0], {"order": "costliest-first"}
    col_len = np.diff(colptr).astype(np.float64)
    work = PROBE_STREAMED_UNITS * float(cost.sum()) + PROBE_PAIR_UNITS * n * (n - 1) / 2
    rows = probe_rows(indptr, indices, col_len, PROBE_SHARE * work)
    if rows.size == 0:
        return orders[0], {"order": "costliest-first"}
    pushes = _probe_pushes(indptr, indices, data, colptr, rowidx, coldata,
                           labels.astype(np.int32), rows, np.stack(orders), k).sum(axis=1)
    pick = int(pushes[1] < pushes[0])
    return orders[pick], {"order": ("costliest-first", "cheapest-first")[pick],
                          "probe_rows": int(rows.size), "probe_pushes": [int(x) for x in pushes]}


def new_heaps(n: int, k: int, n_sets: int, dtype):
    """Empty heap sets ``(hv, hi, hn, thr)`` for :func:`run_blocks`: values, labels and sizes
    of ``n_sets`` sets of ``n`` rows, and each row's admission threshold, shared by the sets
    (:func:`_offer_shared`)."""
    return (np.empty(n_sets * n * k, dtype=dtype), np.empty(n_sets * n * k, dtype=np.int32),
            np.zeros(n_sets * n, dtype=np.int32),
            np.full(n + LANES, -np.inf, dtype=dtype))  # + a full last block


def block_entries(indptr) -> int:
    """The most entries any block of LANES consecutive rows holds: a bound on its columns."""
    n = indptr.size - 1
    if n == 0:
        return 0
    starts = np.arange(0, n, LANES)
    return int(np.max(indptr[np.minimum(starts + LANES, n)] - indptr[starts]))


def new_scratch(indptr, m: int, n_sets: int, dtype):
    """Per-thread scratch of :func:`run_blocks` for the CSR row pointer ``indptr`` over m
    features: the accumulators, block values (a slot per column of the block), first
    positions, column lists, column slots, marks and touched lists. Each call leaves it as
    it found it, so one scratch serves every call of a top-k. Every page is written here
    (``np.full``), not faulted in inside the first timed blocks."""
    n = indptr.size - 1
    slots = max(1, min(m, block_entries(indptr)))
    return (np.full((n_sets, n, LANES), 0, dtype=dtype),
            np.full((n_sets, slots * LANES), 0, dtype=dtype),
            np.full((n_sets, m), -1, dtype=np.int64), np.full((n_sets, m), 0, dtype=np.int32),
            np.full((n_sets, m), 0, dtype=np.int32),
            np.full((n_sets, n), -1, dtype=np.int64), np.full((n_sets, n), 0, dtype=np.int64))


def topk_heaps_blocked(indptr, indices, data, colptr, rowidx, coldata, pos, order, cost, n_sets,
                       k, include_self, labels):
    """Heaps ``(hv, hi, hn)`` of every row: the blocks ``order`` run by :func:`run_blocks`
    into fresh heap sets, merged into set 0."""
    n = indptr.size - 1
    hv, hi, hn, thr = new_heaps(n, k, n_sets, data.dtype)
    run_blocks(indptr, indices, data, colptr, rowidx, coldata, pos, order, cost, n_sets, k,
               include_self, labels, hv, hi, hn, thr,
               *new_scratch(indptr, colptr.size - 1, n_sets, data.dtype))
    merge_heap_sets(hv, hi, hn, n, k, n_sets)
    return hv, hi, hn


@njit(cache=True, parallel=True)
def run_blocks(indptr, indices, data, colptr, rowidx, coldata, pos, order, cost, n_sets, k,
               include_self, labels, hv, hi, hn, thr, acc_t, weights_t, first_t, cols_t, slot_t,
               mark_t, touched_t):
    """Offer the pairs of the blocks ``order`` (of LANES consecutive rows, costliest first;
    ``cost``: per block) to the heap sets ``(hv, hi, hn, thr)`` (:func:`new_heaps`), in place.
    ``n_sets``: tasks, one heap set each (numba's thread count (the caller's
    ``numba.get_num_threads()``; asked for here, it would keep numba from caching the
    kernel); ``labels``: original index of each relabelled row, what the heaps hold (ties go
    to the lower original column). The kept set does not depend on which call or thread
    offered a pair, so the blocks may be run in several calls into the same heaps.
    ``acc_t`` .. ``touched_t``: per-thread scratch (:func:`new_scratch`), left as found."""
    n = indptr.size - 1
    zero = data.dtype.type(0)
    w_t = np.empty((n_sets, LANES), dtype=data.dtype)
    taken = np.zeros(1, dtype=np.int64)  # blocks handed out so far
    for tt in prange(n_sets):
      t = np.int64(tt)  # prange indices may be unsigned; uint64 + int64 gives float64
      acc, weights, first, cols, slot = acc_t[t], weights_t[t], first_t[t], cols_t[t], slot_t[t]
      mark, touched, w = mark_t[t], touched_t[t], w_t[t]
      hbase = t * n
      while True:  # blocks by cost, each to the next thread that is free
        q = _next_index(taken)
        if q >= order.size:
            break
        blk = order[q]
        i0 = blk * LANES
        nb = min(LANES, n - i0)
        nu = 0
        for b in range(nb):
            r = i0 + b
            self_dot = zero
            for p in range(indptr[r], indptr[r + 1]):
                c = indices[p]
                v = data[p]
                self_dot += v * v
                if first[c] < 0:
                    first[c] = pos[p]
                    cols[nu] = c
                    slot[c] = nu
                    nu += 1
                weights[slot[c] * LANES + b] = v
            if include_self and self_dot > zero:
                _offer_shared(hv, hi, hn, thr, hbase + r, r, k, self_dot, labels[r])
        ucols = np.sort(cols[:nu])  # ascending: the summation order of the rows form
        # a block touching a good share of the rows after it is read back by a scan
        scan = 4 * cost[blk] > n - i0
        nt = 0
        for u in range(nu):
            c = ucols[u]
            cb = slot[c] * LANES
            for b in range(LANES):
                w[b] = weights[cb + b]
                weights[cb + b] = zero
            start = first[c] + 1
            first[c] = -1
            if scan:
                for pp in range(start, colptr[c + 1]):
                    y = coldata[pp]
                    _axpy_row(acc, rowidx[pp], w, y)
            else:
                for pp in range(start, colptr[c + 1]):
                    j = np.int64(rowidx[pp])
                    if mark[j] != blk:
                        mark[j] = blk
                        touched[nt] = j
                        nt += 1
                    _axpy_row(acc, j, w, coldata[pp])
        if scan:
            nt = n - i0 - 1
        for q2 in range(nt):
            j = i0 + 1 + q2 if scan else touched[q2]
            a = acc[j]
            bits = _take_row(acc, j, thr, i0, thr[j])
            # lanes of rows r < j only: the sums for j <= r inside the block are discarded
            bits &= (np.uint64(1) << np.uint64(min(j - i0, LANES))) - np.uint64(1)
            while bits:
                b = np.int64(trailing_zeros(bits))
                bits &= bits - np.uint64(1)
                r = i0 + b
                s = a[b]
                _offer_shared(hv, hi, hn, thr, hbase + r, r, k, s, labels[j])
                _offer_shared(hv, hi, hn, thr, hbase + j, j, k, s, labels[r])
            a[:] = zero
