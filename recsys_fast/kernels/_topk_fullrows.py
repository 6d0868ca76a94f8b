"""The ``rows`` form of ``cosine_topk(strategy="sparse")``: every row of S = X @ X.T in full,
selected where it is computed.

Row i is accumulated (Gustavson) into a dense accumulator over all rows, from the full column
of each of its features; its positive entries are then cut to the k largest by a radix select
on their bit patterns (a positive float's bits order as its value does): histograms of 11 bits
at a time, most significant first, find the least key among the k largest up to a bin of at
most k keys, and only the keys from that bin up reach a size-k heap. A heap fed every candidate
in arrival order costs a sift per candidate when the candidates arrive in ascending order,
which is how a TF-IDF matrix relabelled by popularity delivers them (long rows, low weights
first); the select costs a pass or two over the candidates whatever their order.

Compared with the blocked form (:mod:`._topk_blocked`), which computes each pair (i, j > i) once
and offers it to both rows' heaps, this form does every multiply-add twice but touches only the
row's own output: it wins where a row's candidates are few per multiply-add and the blocks of
the blocked form share few columns (short rows over many features, as in TF-IDF matrices);
the blocked form wins where rows share their columns (ratings). ``tfidf_topk`` runs this form;
a generic call races both where the input looks like TF-IDF (``_topk_sparse.sparse_run``).

Each S[i, j] is the same sum of the same products in the same (ascending column) order as in
the blocked form, multiplied and added separately, and the kept set follows the same tie rule
(the lower original column first), so both forms are bit-identical. Rows may run in several
calls (:class:`RowsTopk`); each row's output is final when its call returns.
Per thread: an accumulator, a mark and a touched list over the rows, candidate values
(``n_rows * (itemsize * 2 + 8)`` bytes); the output: ``n_rows * k * (itemsize + 4)`` bytes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from recsys_fast.kernels import _topk_numba as nb
from recsys_fast.kernels._topk_blocked import _next_index
from recsys_fast.memory import check_memory

RADIX = 11  # bits per histogram pass of the select: 2048 counters, 8 KB, in L1
# a row is read back by a scan of the accumulator, not its touched list, when its
# multiply-adds exceed this many times the number of rows
SCAN_COST = 1.0


@intrinsic
def _key(typingctx, x):
    """The bits of the float ``x`` as an unsigned integer of its width (a positive float's
    bits order as its value does)."""
    width = x.bitwidth
    sig = (types.uint32 if width == 32 else types.uint64)(x)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return sig, codegen


@njit(cache=True, inline="always")
def _radix_floor(vals, m, k, top, hist, bmin, bmax):
    """The least key ``lo`` (:func:`_key`) such that the keys >= lo among ``vals[:m]`` (all
    positive) hold the k largest and at most k more beside those above lo's bin (m > k).
    ``hist``: the counts of the keys' top bits (``key >> top``, 2**RADIX bins, nonzero in
    ``bmin..bmax`` only), left zeroed. ``top``: shift of the highest bits compared (sign bit
    excluded)."""
    nbins = 1 << RADIX
    zero = _key(vals[0]) & 0
    one = zero + (nbins - 1)
    prefix = zero
    pmask = zero
    need = k
    shift = top
    while True:
        cum = 0
        b = bmax
        while True:  # the bin holding the need-th largest
            cum += hist[b]
            if cum >= need:
                break
            b -= 1
        in_bin = hist[b]
        hist[bmin : bmax + 1] = 0
        lo = prefix | ((zero + b) << shift)
        if in_bin <= k or shift == 0:
            return lo
        need -= cum - in_bin
        prefix = lo
        pmask |= one << shift
        shift = max(shift - RADIX, 0)
        bmin, bmax = nbins, -1
        for q in range(m):
            key = _key(vals[q])
            if (key & pmask) == prefix:
                b = np.int64((key >> shift) & one)
                hist[b] += 1
                bmin = min(bmin, b)
                bmax = max(bmax, b)


@njit(cache=True, inline="always")
def _candidate(vals, touched, hist, m, s, j, top, bmin, bmax):
    """Candidate m is (s, j); its top bits counted in ``hist``; the new ``(bmin, bmax)``."""
    vals[m] = s
    touched[m] = j
    b = np.int64(_key(s) >> top)
    hist[b] += 1
    return min(bmin, b), max(bmax, b)


@njit(cache=True, parallel=True)
def run_rows(indptr, indices, data, colptr, rowidx, coldata, rows, cost, n_tasks, k,
             include_self, labels, acc_t, mark_t, touched_t, vals_t, top, out_v, out_i, out_n):
    """Top-k of the relabelled rows ``rows`` (costliest first; ``cost``: multiply-adds per row)
    into ``out_v``/``out_i`` (row r's kept values and original labels at ``r * k``, labels
    ascending) and ``out_n``. ``n_tasks``: numba's thread count; ``*_t``: per-thread scratch
    (:class:`RowsTopk`), accumulators zero and marks -1 between calls; ``top``: the shift of
    the radix select's first pass (the float width less the sign bit and RADIX)."""
    n = indptr.size - 1
    zero = data.dtype.type(0)
    taken = np.zeros(1, dtype=np.int64)  # rows handed out so far
    for tt in prange(n_tasks):
        t = np.int64(tt)
        acc, mark, touched = acc_t[t], mark_t[t], touched_t[t]
        vals = vals_t[t]
        nbins = 1 << RADIX
        hist = np.zeros(nbins, dtype=np.int32)
        hv = np.empty(k, dtype=data.dtype)
        hi = np.empty(k, dtype=np.int32)
        order = np.empty(k, dtype=np.int64)
        while True:  # rows by cost, each to the next thread that is free
            q = _next_index(taken)
            if q >= rows.size:
                break
            i = rows[q]
            scan = cost[i] > SCAN_COST * n
            nt = 0
            self_dot = zero
            for p in range(indptr[i], indptr[i + 1]):
                c = indices[p]
                v = data[p]
                self_dot += v * v
                if scan:
                    for pp in range(colptr[c], colptr[c + 1]):
                        acc[rowidx[pp]] += v * coldata[pp]
                else:
                    for pp in range(colptr[c], colptr[c + 1]):
                        j = np.int64(rowidx[pp])
                        # a mark, not acc == 0, detects first touches: a sum can return to
                        # exactly zero and must not be listed twice
                        if mark[j] != i:
                            mark[j] = i
                            touched[nt] = j
                            nt += 1
                        acc[j] += v * coldata[pp]
            acc[i] = zero  # the row's own entry is offered below, as self_dot
            if scan:
                nt = n
            m = 0
            bmin, bmax = nbins, -1  # the first radix pass, fused: counts of the top bits
            for q2 in range(nt):
                j = q2 if scan else touched[q2]
                s = acc[j]
                if s != zero:
                    acc[j] = zero
                    if s > zero:
                        bmin, bmax = _candidate(vals, touched, hist, m, s, j, top, bmin, bmax)
                        m += 1
            if include_self and self_dot > zero:
                bmin, bmax = _candidate(vals, touched, hist, m, self_dot, i, top, bmin, bmax)
                m += 1
            size = 0
            if m > k:
                lo = _radix_floor(vals, m, k, top, hist, bmin, bmax)
                for q2 in range(m):
                    if _key(vals[q2]) >= lo:
                        size = nb._heap_push(hv, hi, 0, size, k, vals[q2], labels[touched[q2]])
            else:
                if m:
                    hist[bmin : bmax + 1] = 0
                for q2 in range(m):
                    size = nb._heap_push(hv, hi, 0, size, k, vals[q2], labels[touched[q2]])
            for e in range(size):  # labels ascending: sort (label, slot) packed in one integer
                order[e] = (np.int64(hi[e]) << 32) | e
            order[:size].sort()
            base = i * k
            for e in range(size):
                slot = order[e] & 0xFFFFFFFF
                out_i[base + e] = hi[slot]
                out_v[base + e] = hv[slot]
            out_n[i] = size


@njit(cache=True, parallel=True)
def _gather(out_v, out_i, out_n, rel, k, indptr, indices, values):
    """CSR arrays whose row q is relabelled row ``rel[q]`` of the padded per-row outputs
    (``indptr`` filled by the caller)."""
    for qq in prange(rel.size):
        q = np.int64(qq)
        r = rel[q]
        o = indptr[q]
        for e in range(out_n[r]):
            indices[o + e] = out_i[r * k + e]
            values[o + e] = out_v[r * k + e]


class RowsTopk:
    """One ``rows``-form sparse top-k call on the normalised CSR ``Xn``, in steps: each
    :meth:`run` computes the given rows (relabelled indices) in full; :meth:`finish` returns the
    top-k CSR. ``prepared``: ``_topk_numba.relabelled(Xn)`` when already built (``Xn`` may
    then be None); ``cost``: its rows' multiply-adds (``_topk_numba.row_costs``), likewise."""

    form = "rows"

    def __init__(self, Xn, k: int, include_self: bool, n_threads: int, prepared=None,
                 cost=None):
        self.perm, self.arrays = prepared if prepared is not None else nb.relabelled(Xn)
        indptr, indices, data, colptr = self.arrays[:4]
        n, dtype = indptr.size - 1, data.dtype
        check_memory("cosine_topk rows",
                     n * k * (dtype.itemsize + 4) + n_threads * n * (2 * dtype.itemsize + 12))
        self.n, self.k, self.include_self, self.n_threads = n, k, include_self, n_threads
        self.cost = nb.row_costs(indptr, indices, colptr) if cost is None else cost
        self.order = np.argsort(-self.cost, kind="stable").astype(np.int64)  # costliest first
        self.done = np.zeros(n, dtype=bool)
        self.out_v = np.empty(n * k, dtype=dtype)
        self.out_i = np.empty(n * k, dtype=np.int32)
        self.out_n = np.zeros(n, dtype=np.int32)
        self.acc = np.zeros((n_threads, n), dtype=dtype)
        self.mark = np.full((n_threads, n), -1, dtype=np.int32)
        self.touched = np.empty((n_threads, n), dtype=np.int32)
        self.vals = np.empty((n_threads, n + 1), dtype=dtype)
        self.top = 8 * dtype.itemsize - 1 - RADIX

    @property
    def n_blocks(self) -> int:
        """Units of work (one row each), as the blocked form's blocks."""
        return self.n

    def run(self, rows: np.ndarray) -> None:
        """Compute the rows ``rows`` (relabelled indices, costliest first), each once."""
        with nb.numba_threads(self.n_threads):
            run_rows(*self.arrays[:6], rows, self.cost, self.n_threads, self.k,
                     self.include_self, self.perm, self.acc, self.mark, self.touched, self.vals,
                     self.top, self.out_v, self.out_i, self.out_n)
        self.done[rows] = True

    def csr(self, rel: np.ndarray, n_cols: int):
        """The CSR whose row q is relabelled row ``rel[q]`` (run first where not yet done)."""
        todo = rel[~self.done[rel]]
        if todo.size:
            self.run(todo[np.argsort(-self.cost[todo], kind="stable")])
        indptr = np.zeros(rel.size + 1, dtype=np.int64)
        np.cumsum(self.out_n[rel], out=indptr[1:])
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        values = np.empty(int(indptr[-1]), dtype=self.out_v.dtype)
        with nb.numba_threads(self.n_threads):
            _gather(self.out_v, self.out_i, self.out_n, rel, self.k, indptr, indices, values)
        out = scipy.sparse.csr_matrix((values, indices, indptr), shape=(rel.size, n_cols))
        out.has_sorted_indices = True
        return out

    def finish(self):
        """The top-k CSR (original labels, columns ascending) of every row."""
        return self.csr(nb.inverse_permutation(self.perm), self.n)

    def run_all(self):
        return self.finish()
