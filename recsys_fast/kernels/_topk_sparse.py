"""The CPU ``sparse`` strategy of ``cosine_topk`` as steps, and ``auto``'s trial of it.

:class:`SparseTopk` prepares the relabelled arrays once, offers the pairs of any subset of
row blocks to one set of heaps per thread (:func:`._topk_blocked.run_blocks`), and turns the
heaps into the top-k CSR. Blocks may run in several calls: the kept set does not depend on
which call offered a pair, so the result equals one call over all blocks.

:func:`run_or_yield` is ``auto``'s rule on the CPU: run the sparse strategy on a growing,
stratified prefix of its blocks (every cost level sampled) while the time spent stays within
:data:`TRIAL_SHARE` of the dense strategy's modelled time, extrapolate the remaining blocks'
time from that prefix by their work (streamed entries), and finish by the sparse strategy when that is no more than
the dense time, the trial's work kept; else hand over to ``dense``, having spent at most
about that share.
"""

from __future__ import annotations

import contextlib
import time

import numba
import numpy as np
import scipy.sparse

from recsys_fast.kernels import _topk_blocked as bl
from recsys_fast.kernels import _topk_numba as nb
from recsys_fast.memory import available_bytes, check_memory

TRIAL_SHARE = 0.04  # most of the dense strategy's modelled time a trial may spend
_TRIAL_PREFIX = 1 / 8  # largest share of the blocks a trial runs before it decides


def stratified(n: int) -> np.ndarray:
    """A permutation of ``range(n)`` whose every prefix spreads evenly over the range (the
    bit-reversal, van der Corput, order): a prefix of blocks sorted by cost samples every
    cost level."""
    bits = max(1, int(n - 1).bit_length())
    i = np.arange(1 << bits, dtype=np.int64)
    rev = np.zeros_like(i)
    for b in range(bits):
        rev |= ((i >> b) & 1) << (bits - 1 - b)
    return rev[rev < n]


class SparseTopk:
    """One blocked sparse top-k call on the normalised CSR ``Xn``, in steps."""

    def __init__(self, Xn, k: int, include_self: bool, n_threads: int):
        self.n = Xn.shape[0]
        self.k, self.include_self, self.n_threads = k, include_self, n_threads
        check_memory("cosine_topk heaps", n_threads * self.n * k * (Xn.dtype.itemsize + 4))
        self.perm, self.arrays = nb.relabelled(Xn)
        indptr, indices, data, colptr, _, _, pos = self.arrays
        self.cost = bl.block_costs(indptr, indices, colptr, pos)
        self.order = np.argsort(-self.cost, kind="stable").astype(np.int64)  # costliest first
        self.heaps = bl.new_heaps(self.n, k, n_threads, data.dtype)
        for a in self.heaps[:3]:  # fault the pages in now, not inside the first timed blocks
            a.fill(0)

    @property
    def n_blocks(self) -> int:
        return int(self.order.size)

    @contextlib.contextmanager
    def _threads(self):
        prev = numba.get_num_threads()
        numba.set_num_threads(self.n_threads)
        try:
            yield
        finally:
            numba.set_num_threads(prev)

    def run(self, blocks: np.ndarray) -> None:
        """Offer the pairs of ``blocks`` (block indices) to the heaps."""
        with self._threads():
            bl.run_blocks(*self.arrays, blocks, self.cost, self.n_threads, self.k,
                          self.include_self, self.perm, *self.heaps)

    def finish(self):
        """The top-k CSR (original labels, columns ascending) from the heaps."""
        hv, hi, hn, _ = self.heaps
        with self._threads():
            nb.merge_heap_sets(hv, hi, hn, self.n, self.k, self.n_threads)
            counts, out_idx, out_val = nb.heaps_to_csr(hv, hi, hn, self.perm, self.k)
        out = scipy.sparse.csr_matrix((out_val, out_idx, counts), shape=(self.n, self.n))
        out.has_sorted_indices = True
        return out

    def run_all(self):
        self.run(self.order)
        return self.finish()


def trial(run: SparseTopk, dense_s: float,
          prefix: float = _TRIAL_PREFIX) -> tuple[bool, np.ndarray, dict]:
    """Run a stratified prefix of ``run``'s blocks; ``(sparse_wins, rest, record)``.

    The prefix grows in chunks that double from two blocks per thread and stops at the first
    of: the time spent reaching ``TRIAL_SHARE * dense_s``, a share ``prefix`` of the blocks
    run; a chunk is never smaller than two blocks per thread (a part-idle chunk would time
    one thread's work as the machine's). A block's work is weighed by the column entries it
    streams (``SparseTopk.cost``, plus one): a few sampled blocks whose costs differ from the
    average say nothing wrong about the rest, whose time is expected to be the least time per
    unit of work of any chunk times their work. A chunk slowed by something else (cold caches,
    a descheduled thread, BLAS threads still spinning from an earlier call) only ever raises
    its own figure. The sparse strategy wins when that is at most ``dense_s``, the time of a
    whole dense call."""
    seq = run.order[stratified(run.n_blocks)]
    budget = TRIAL_SHARE * dense_s
    limit = min(run.n_blocks, max(1, int(run.n_blocks * prefix)))
    least = 2 * run.n_threads  # a chunk keeps every thread busy: no part-idle timings
    weight = run.cost.astype(np.float64) + 1.0  # a block's work, from its streamed entries
    done, spent, size, per_unit = 0, 0.0, least, np.inf
    while done < limit and spent < budget:
        take = min(size, limit - done)
        if done and take < least:
            break
        chunk = seq[done : done + take]
        chunk = chunk[np.argsort(-weight[chunk], kind="stable")]  # costliest first: balanced
        t0 = time.perf_counter()
        run.run(chunk)
        dt = time.perf_counter() - t0
        spent += dt
        done += chunk.size
        per_unit = min(per_unit, dt / weight[chunk].sum())
        size *= 2
    rest_s = per_unit * weight[seq[done:]].sum() if done < run.n_blocks else 0.0
    record = {"blocks": run.n_blocks, "trial_blocks": done, "trial_s": spent,
              "sparse_rest_s": rest_s, "dense_s": dense_s}
    rest = run.order[np.isin(run.order, seq[done:], assume_unique=True)]
    return rest_s <= dense_s, rest, record


def run_or_yield(run: SparseTopk, dense_s: float):
    """``(result, record)``: the sparse top-k CSR, its trial's blocks kept, when
    :func:`trial` finds it no slower than ``dense_s``; else ``(None, record)``."""
    wins, rest, record = trial(run, dense_s)
    if not wins:
        return None, record
    run.run(rest)
    return run.finish(), record


def sparse_half(n: int, k: int, itemsize: int, n_threads: int) -> bool:
    """Whether each thread may own n_rows heaps (pairs computed once, the blocked kernel);
    else one heap set and full rows, so that the heaps do not crowd memory."""
    heap_bytes = n_threads * n * k * (itemsize + 4)
    return n_threads == 1 or heap_bytes < min(available_bytes() // 4, 2 << 30)


def sparse_topk(Xn, k: int, include_self: bool, n_threads: int, half: bool | None = None):
    """The ``sparse`` strategy: the blocked kernel (:class:`SparseTopk`, each pair once) when
    ``half`` (default :func:`sparse_half`), else one heap set over full rows."""
    n = Xn.shape[0]
    if half is None:
        half = sparse_half(n, k, Xn.dtype.itemsize, n_threads)
    if half:  # blocks of rows, each pair once (see _topk_blocked)
        return SparseTopk(Xn, k, include_self, n_threads).run_all()
    check_memory("cosine_topk heaps", n * k * (Xn.dtype.itemsize + 4))
    perm, arrays = nb.relabelled(Xn)
    indptr, indices, data, colptr, _, _, pos = arrays
    prev = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        cost = nb.row_costs(indptr, indices, colptr, pos, False)
        order = np.argsort(-cost, kind="stable").astype(np.int64)
        hv, hi, hn = nb.topk_heaps(*arrays, order, cost, n_threads, k, False, include_self,
                                   perm)
        counts, out_idx, out_val = nb.heaps_to_csr(hv, hi, hn, perm, k)
    finally:
        numba.set_num_threads(prev)
    out = scipy.sparse.csr_matrix((out_val, out_idx, counts), shape=(n, n))
    out.has_sorted_indices = True
    return out
