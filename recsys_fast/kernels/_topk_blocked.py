"""numba kernel behind ``cosine_topk(strategy="sparse")``: rows in blocks of ``LANES``.

``_topk_numba.topk_heaps`` computes row i of S = X @ X.T by streaming, for each column c of
row i, the tail of column c (the rows j > i sharing c) and scattering ``x_ic * x_jc`` into an
accumulator. Every multiply-add then costs a load of ``(j, x_jc)`` from a column that, at the
10M-rating scale, is far out of cache: the kernel is bound by those loads, not by arithmetic.

Here ``LANES`` consecutive rows (after the popularity relabelling, rows of similar degree
sharing most of their columns) are computed together. The block's columns are merged into one
ascending list, each with a vector of the block rows' values (zero where a row lacks the
column); each column tail is streamed once per block, and each loaded ``(j, x_jc)`` updates a
``LANES``-wide slice of an interleaved accumulator ``acc[j * LANES + b]`` (one SIMD multiply
and add). For hot rows the loads fall by up to ``LANES`` times; a column a block row lacks adds
``0 * x_jc``, which changes no sum.

Results are bit-identical to ``topk_heaps``: each S[i, j] is the sum of the same products in
the same (ascending column) order, multiplied and added separately (no FMA contraction), and
each pair (i, j > i) is computed once and offered to both rows' heaps with the same tie rule,
whose kept set does not depend on the arrival order. The column tail starts after the block's
first row holding the column, so a block row also receives sums for columns j <= itself inside
its block; those are discarded.

Threads take blocks in descending order of cost, round-robin; as in ``topk_heaps`` each thread
owns a full set of heaps (pairs reach any row) and the sets are merged at the end.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from recsys_fast.kernels._topk_numba import _heap_push, _offer

LANES = 16  # rows per block: one 64-byte cache line of float32 accumulators per column j


@intrinsic
def _axpy_row(typingctx, acc, j, w, y):
    """``acc[j, :] += w * y`` as one LANES-wide vector multiply, then add (numba leaves LLVM's
    SLP vectorizer off, and a constant 8-trip loop is unrolled before the loop vectorizer
    sees it). ``acc``: C-ordered (n, LANES); ``w``: LANES values. Lane by lane the same
    rounding as the scalar ``acc[j, b] += w[b] * y`` (no FMA contraction)."""
    sig = types.void(acc, j, w, y)

    def codegen(context, builder, sig, args):
        acc_t, j_t, w_t, _ = sig.args
        a = context.make_array(acc_t)(context, builder, args[0])
        wa = context.make_array(w_t)(context, builder, args[2])
        vec = ir.VectorType(context.get_value_type(acc_t.dtype), LANES)
        align = acc_t.dtype.bitwidth // 8
        i64 = ir.IntType(64)
        row = args[1]
        if row.type.width < 64:
            row = builder.sext(row, i64) if j_t.signed else builder.zext(row, i64)
        ptr = builder.bitcast(builder.gep(a.data, [builder.mul(row, ir.Constant(i64, LANES))]),
                              vec.as_pointer())
        old = builder.load(ptr)
        old.align = align
        wv = builder.load(builder.bitcast(wa.data, vec.as_pointer()))
        wv.align = align
        i32 = ir.IntType(32)
        ys = builder.insert_element(ir.Constant(vec, ir.Undefined), args[3], ir.Constant(i32, 0))
        ys = builder.shuffle_vector(ys, ir.Constant(vec, ir.Undefined),
                                    ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
        store = builder.store(builder.fadd(old, builder.fmul(wv, ys)), ptr)
        store.align = align
        return context.get_dummy_value()

    return sig, codegen


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


@njit(cache=True, parallel=True)
def topk_heaps_blocked(indptr, indices, data, colptr, rowidx, coldata, pos, order, cost,
                       n_tasks, k, include_self):
    """Heaps ``(hv, hi, hn)`` of every row, as ``topk_heaps(..., half=True)``; ``order``: the
    blocks (of LANES consecutive rows) to run, costliest first; ``cost``: per block."""
    n = indptr.size - 1
    m = colptr.size - 1
    hv = np.empty(n_tasks * n * k, dtype=data.dtype)
    hi = np.empty(n_tasks * n * k, dtype=np.int32)
    hn = np.zeros(n_tasks * n, dtype=np.int32)
    thr = np.full(n_tasks * n, -np.inf, dtype=data.dtype)
    zero = data.dtype.type(0)
    n_order = order.size
    for tt in prange(n_tasks):
        t = np.int64(tt)  # prange indices may be unsigned; uint64 + int64 gives float64
        acc = np.zeros((n, LANES), dtype=data.dtype)
        w = np.empty(LANES, dtype=data.dtype)
        weights = np.zeros(m * LANES, dtype=data.dtype)
        first = np.full(m, -1, dtype=np.int64)
        cols = np.empty(m, dtype=np.int64)
        mark = np.full(n, -1, dtype=np.int64)
        touched = np.empty(n, dtype=np.int64)
        hbase = t * n
        for q in range(t, n_order, n_tasks):
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
                        nu += 1
                    weights[c * LANES + b] = v
                if include_self and self_dot > zero:
                    _offer(hv, hi, hn, thr, hbase + r, k, self_dot, r)
            ucols = np.sort(cols[:nu])  # ascending: the summation order of topk_heaps
            # a block touching a good share of the rows after it is read back by a scan
            scan = 4 * cost[blk] > n - i0
            nt = 0
            for u in range(nu):
                c = ucols[u]
                cb = c * LANES
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
                for b in range(nb):
                    s = a[b]
                    if s == zero:
                        continue
                    a[b] = zero
                    r = i0 + b
                    if s > zero and j > r:
                        _offer(hv, hi, hn, thr, hbase + r, k, s, j)
                        _offer(hv, hi, hn, thr, hbase + j, k, s, r)
    if n_tasks > 1:
        for rr in prange(n):  # merge the other threads' heaps of row r into set 0
            r = np.int64(rr)
            base0 = r * k
            size = hn[r]
            for s in range(1, n_tasks):
                b = (s * n + r) * k
                for e in range(hn[s * n + r]):
                    size = _heap_push(hv, hi, base0, size, k, hv[b + e], hi[b + e])
            hn[r] = size
    return hv, hi, hn
