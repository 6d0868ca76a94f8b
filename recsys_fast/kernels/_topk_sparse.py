"""The CPU ``sparse`` strategy of ``cosine_topk`` as steps: its two forms, the race that picks
one for the input at hand, and ``auto``'s trial against ``dense``.

Two forms compute the same top-k bit for bit:

- ``blocked`` (:class:`SparseTopk`, :mod:`._topk_blocked`): rows in blocks of LANES, each
  pair once, offered to both rows' heaps; strong where rows share their columns (ratings);
- ``rows`` (:class:`._topk_fullrows.RowsTopk`): every row in full, selected where computed;
  strong where rows are short over many features (TF-IDF).

Each runs its units (blocks, rows) in any split into calls with the result of one call.
:func:`race` runs both on growing stratified samples of their own units, each sample's work
kept, until one is clearly ahead or both have spent :data:`RACE_SHARE` of the leader's
extrapolated time; the leader finishes. :func:`run_or_yield` is ``auto``'s rule on the CPU:
run a form on a growing, stratified prefix of its units while the time spent stays within
:data:`TRIAL_SHARE` of the dense strategy's modelled time (longer while its chunks disagree,
see :func:`trial`), extrapolate the remaining units' time from that prefix by their work, and
finish when that is no more than the dense time, the trial's work kept; else hand over to
``dense``, having spent at most about that share.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import scipy.sparse

from recsys_fast.kernels import _topk_blocked as bl
from recsys_fast.kernels import _topk_numba as nb
from recsys_fast.kernels._topk_fullrows import RowsTopk
from recsys_fast.kernels.core import pair_madds
from recsys_fast.memory import available_bytes, check_memory

TRIAL_SHARE = 0.04  # the dense strategy's modelled time a trial spends when its rate holds
TRIAL_CAP = 0.5  # most of it a trial spends while its chunks disagree (a stall, a cold page)
_TRIAL_PREFIX = 1 / 8  # largest share of the units a trial or a race runs before it decides
# dense is picked only when the sparse rest is modelled this much slower than a dense call: the
# trial is timed now, where load only slows it, the dense model on a quiet machine (fastest
# calibration rounds); the margin is the regret auto may pay where dense is the faster
DENSE_MARGIN = 1.15
RACE_SHARE = 0.03  # most of the leading form's extrapolated time each form spends racing
RACE_LEAD = 1.25  # a form this much faster than the other, both measured, wins at once
RACE_MIN_CHUNK_S = 2e-3  # a chunk shorter than this measures call overhead, not the kernel
RACE_AGREE = 1.5  # the most two measured chunks' rates (seconds per unit of work) may differ
RACE_GIVE_UP = 0.1  # a form not measured after this share of a measured form's time loses
RACE_MIN_ROWS = 2048  # fewer rows: the blocked form, no race (either form takes milliseconds)
# The race runs only where the rows form can win: under one multiply-add (both halves) per
# row pair (S sparse, candidate handling dominant), and under 8 of those per entry the
# blocked form streams (its 16-lane blocks share few columns). Elsewhere the blocked form.
RACE_PAIR_MADDS = 1.0
RACE_SHARING = 8.0
FORMS = ("auto", "blocked", "rows")


class LruChoices:
    """Choices kept for this process by input structure (:func:`structure_key`), the newest
    ``size`` of them."""

    def __init__(self, size: int = 256):
        self.size, self.items = size, OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def structure_key(Xn, k: int, include_self: bool, n_threads: int) -> tuple:
    """What a choice of form or strategy depends on: shape, entries, the row pointer, a sample
    of the column indices, k, self, threads and dtype (hashed: O(n_rows) plus 4096 sampled
    entries)."""
    step = max(1, Xn.nnz // 4096)
    return (Xn.shape, Xn.nnz, k, include_self, n_threads, Xn.dtype.str,
            hash(Xn.indptr.tobytes()), hash(Xn.indices[::step].tobytes()))


RACED = LruChoices()  # the race's leader in this process, by input structure


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
    """One blocked-form sparse top-k call on the normalised CSR ``Xn``, in steps.
    ``prepared``: ``_topk_numba.relabelled(Xn)`` when already built."""

    form = "blocked"

    def __init__(self, Xn, k: int, include_self: bool, n_threads: int, prepared=None):
        self.n = Xn.shape[0]
        self.k, self.include_self, self.n_threads = k, include_self, n_threads
        check_memory("cosine_topk heaps", n_threads * self.n * k * (Xn.dtype.itemsize + 4))
        self.perm, self.arrays = prepared if prepared is not None else nb.relabelled(Xn)
        indptr, indices, data, colptr, _, _, pos = self.arrays
        self.cost = bl.block_costs(indptr, indices, colptr, pos)
        self.order, self.order_record = bl.choose_order(self.arrays, self.perm, self.cost, k,
                                                        n_threads)
        self.done = np.zeros(self.order.size, dtype=bool)
        self.heaps = bl.new_heaps(self.n, k, n_threads, data.dtype)
        self.scratch = bl.new_scratch(indptr, colptr.size - 1, n_threads, data.dtype)
        for a in self.heaps[:3]:  # fault the pages in now, not inside the first timed blocks
            a.fill(0)

    @property
    def n_blocks(self) -> int:
        return int(self.order.size)

    def run(self, blocks: np.ndarray) -> None:
        """Offer the pairs of ``blocks`` (block indices, each once) to the heaps."""
        with nb.numba_threads(self.n_threads):
            bl.run_blocks(*self.arrays, blocks, self.cost, self.n_threads, self.k,
                          self.include_self, self.perm, *self.heaps, *self.scratch)
        self.done[blocks] = True

    def finish(self):
        """The top-k CSR (original labels, columns ascending), the blocks not yet run first."""
        if not self.done.all():
            self.run(self.order[~self.done[self.order]])
        hv, hi, hn, _ = self.heaps
        with nb.numba_threads(self.n_threads):
            nb.merge_heap_sets(hv, hi, hn, self.n, self.k, self.n_threads)
            counts, out_idx, out_val = nb.heaps_to_csr(hv, hi, hn, self.perm, self.k)
        out = scipy.sparse.csr_matrix((out_val, out_idx, counts), shape=(self.n, self.n))
        out.has_sorted_indices = True
        return out

    def run_all(self):
        return self.finish()


def _pending(run) -> np.ndarray:
    """The units of ``run`` not yet run, in its order."""
    return run.order[~run.done[run.order]]


class _Lane:
    """One form in a race or trial: growing, stratified chunks of its pending units, each
    chunk in the run's order; ``per_unit`` is the least seconds per unit of work (the units'
    cost, plus one) of any chunk, so a chunk slowed by something else only raises its own."""

    def __init__(self, run, prefix: float):
        self.run = run
        pending = _pending(run)
        self.seq = pending[stratified(pending.size)]
        self.limit = min(self.seq.size, max(1, int(run.n_blocks * prefix)))
        self.least = 2 * run.n_threads  # a chunk keeps every thread busy
        self.weight = run.cost.astype(np.float64) + 1.0
        self.rank = nb.inverse_permutation(run.order)
        self.done, self.spent, self.size, self.per_unit = 0, 0.0, self.least, np.inf
        self.last_s, self.rates = 0.0, []

    @property
    def exhausted(self) -> bool:
        return self.done >= self.limit or (self.done > 0 and self.limit - self.done < self.least)

    def step(self) -> None:
        take = min(self.size, self.limit - self.done)
        chunk = self.seq[self.done : self.done + take]
        chunk = chunk[np.argsort(self.rank[chunk])]
        t0 = time.perf_counter()
        self.run.run(chunk)
        self.last_s = time.perf_counter() - t0
        self.spent += self.last_s
        self.done += chunk.size
        self.rates.append(self.last_s / self.weight[chunk].sum())
        self.per_unit = min(self.per_unit, self.rates[-1])
        self.size *= 2

    def rest_s(self) -> float:
        """Extrapolated seconds of the units not yet run."""
        rest = self.seq[self.done :]
        return float(self.per_unit * self.weight[rest].sum()) if rest.size else 0.0

    def total_s(self) -> float:
        """Extrapolated seconds of the whole call at the measured rate."""
        return float(self.per_unit * self.weight.sum())

    def measured(self) -> bool:
        """The last chunk long enough to time the kernel, not its call, and its rate within
        :data:`RACE_AGREE` of the chunk's before (a stall, a descheduled vCPU or pages faulted
        in, costs a chunk a fixed time whatever its work: rates of chunks that double then
        differ); or no more to run."""
        if self.exhausted:
            return True
        if len(self.rates) < 2 or self.last_s < RACE_MIN_CHUNK_S:
            return False
        return self.rates[-2] <= RACE_AGREE * self.rates[-1] <= RACE_AGREE ** 2 * self.rates[-2]


def race(runs: list, prefix: float = _TRIAL_PREFIX):
    """``(leader, record)``: the run of ``runs`` (forms of one call, none run yet) with the
    least extrapolated time, its raced units kept.

    Each form runs growing stratified chunks of its units (:class:`_Lane`), the form that has
    spent least going next, until every form is measured (:meth:`_Lane.measured`: the last
    chunk of at least :data:`RACE_MIN_CHUNK_S`, at the rate of the one before, or its share
    ``prefix`` of its units run), or has spent :data:`RACE_GIVE_UP` of a measured form's
    extrapolated time without being measured. The race ends when the leader is then
    :data:`RACE_LEAD` times ahead of every other form, or when each form has spent
    :data:`RACE_SHARE` of the leader's extrapolated time or run its share."""
    lanes = [_Lane(r, prefix) for r in runs]
    while True:
        done = [lane.total_s() for lane in lanes if lane.measured()]
        cap = RACE_GIVE_UP * min(done) if done else np.inf
        pending = [lane for lane in lanes if not lane.measured() and lane.spent < cap]
        if not pending:
            totals = [lane.total_s() for lane in lanes]
            best = min(totals)
            if all(t >= RACE_LEAD * best for t in totals if t != best):
                break
            pending = [lane for lane in lanes
                       if not lane.exhausted and lane.spent < RACE_SHARE * best]
            if not pending:
                break
        min(pending, key=lambda lane: lane.spent).step()
    totals = [lane.total_s() for lane in lanes]
    lead = lanes[int(np.argmin(totals))]
    record = {lane.run.form: {"units": lane.run.n_blocks, "raced": lane.done,
                              "raced_s": lane.spent, "total_s": lane.total_s()}
              for lane in lanes}
    return lead.run, record


def trial(run, dense_s: float, prefix: float = _TRIAL_PREFIX) -> tuple[bool, np.ndarray, dict]:
    """Run a stratified prefix of ``run``'s pending units; ``(sparse_wins, rest, record)``.

    The prefix grows in chunks that double from two units per thread (:class:`_Lane`) and
    stops at the first of: a share ``prefix`` of the units run; the time spent reaching
    ``TRIAL_SHARE * dense_s`` with the rate measured (:meth:`_Lane.measured`: two chunks
    agreeing), or ``TRIAL_CAP * dense_s`` without; and never before a second chunk, past the
    prefix if need be (a chunk stalled by a descheduled vCPU reads many times slower than the
    kernel is). A chunk is never smaller than two units per thread (a part-idle chunk would
    time one thread's work as the machine's). A unit's work is its cost (streamed entries of
    a block, multiply-adds of a row), plus one: a few sampled units whose costs differ from
    the average say nothing wrong about the rest, whose time is expected to be the least time
    per unit of work of any chunk times their work. The sparse strategy wins when that is at
    most :data:`DENSE_MARGIN` times ``dense_s``, the time of a whole dense call."""
    lane = _Lane(run, prefix)
    budget, cap = TRIAL_SHARE * dense_s, TRIAL_CAP * dense_s
    while True:
        if len(lane.rates) == 1 and lane.done < lane.seq.size:  # one chunk never decides
            lane.limit = max(lane.limit, min(lane.seq.size, lane.done + lane.least))
        elif lane.exhausted or (lane.spent >= budget and (lane.measured() or lane.spent >= cap)):
            break
        lane.step()
    rest_s = lane.rest_s()
    record = {"form": run.form, "blocks": run.n_blocks, "trial_blocks": int(run.done.sum()),
              "trial_s": lane.spent, "sparse_rest_s": rest_s,
              "sparse_total_s": lane.total_s(), "dense_s": dense_s}
    return rest_s <= DENSE_MARGIN * dense_s, _pending(run), record


def run_or_yield(run, dense_s: float):
    """``(result, record)``: the sparse top-k CSR, its trial's units kept, when
    :func:`trial` finds it no slower than ``dense_s``; else ``(None, record)``."""
    wins, _, record = trial(run, dense_s)
    if not wins:
        return None, record
    return run.finish(), record


def sparse_half(n: int, k: int, itemsize: int, n_threads: int) -> bool:
    """Whether each thread may own n_rows heaps (the blocked form); else only the rows form
    runs, so that the heaps do not crowd memory."""
    heap_bytes = n_threads * n * k * (itemsize + 4)
    return n_threads == 1 or heap_bytes < min(available_bytes() // 4, 2 << 30)


def check_form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(map(repr, FORMS))}, got {form!r}")
    return form


def sparse_run(Xn, k: int, include_self: bool, n_threads: int, form: str = "auto"):
    """``(run, record)``: the form of the sparse strategy that runs on ``Xn``, with any raced
    units done. ``form="auto"``: the blocked form below :data:`RACE_MIN_ROWS` rows, the rows
    form where the blocked form's heaps do not fit (:func:`sparse_half`); else the blocked
    form unless :func:`rows_may_win`, then the :func:`race`'s leader, kept for the process by
    input structure (:data:`RACED`): a later call on the same matrix runs the same form
    without a race."""
    check_form(form)
    n = Xn.shape[0]
    half = sparse_half(n, k, Xn.dtype.itemsize, n_threads)
    if form == "blocked" or (form == "auto" and half and n < RACE_MIN_ROWS):
        return SparseTopk(Xn, k, include_self, n_threads), {"form": "blocked"}
    if form == "rows" or not half:
        return RowsTopk(Xn, k, include_self, n_threads), {"form": "rows"}
    key = structure_key(Xn, k, include_self, n_threads)
    kept = RACED.get(key)
    if kept is not None:
        return sparse_run(Xn, k, include_self, n_threads, kept)[0], {"form": kept, "kept": True}
    prepared = nb.relabelled(Xn)
    blocked = SparseTopk(Xn, k, include_self, n_threads, prepared)
    if not rows_may_win(Xn, blocked.cost):
        return blocked, {"form": "blocked"}
    _load_forms(Xn.dtype)
    run, record = race([blocked, RowsTopk(Xn, k, include_self, n_threads, prepared)])
    RACED.put(key, run.form)
    return run, {"form": run.form, "race": record}


def rows_may_win(Xn, block_cost: np.ndarray) -> bool:
    """Whether the rows form is worth racing on ``Xn`` (:data:`RACE_PAIR_MADDS`,
    :data:`RACE_SHARING`): its multiply-adds ``sum of squared column lengths`` against the
    row pairs and against the blocked form's streamed entries (``block_cost``)."""
    n = Xn.shape[0]
    madds = pair_madds(Xn)
    return madds < RACE_PAIR_MADDS * n * n and madds < RACE_SHARING * float(block_cost.sum())


_LOADED: set = set()


def _load_forms(dtype) -> None:
    """Both forms run once on a tiny input of ``dtype`` (numba compiles or loads each kernel on
    its first call in a process): the race then times the kernels, not their loading."""
    if dtype.str in _LOADED:
        return
    X = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=dtype))
    for cls in (SparseTopk, RowsTopk):
        cls(X, 2, False, 1).run_all()
    _LOADED.add(dtype.str)


def sparse_topk(Xn, k: int, include_self: bool, n_threads: int, form: str = "auto"):
    """The ``sparse`` strategy: the top-k CSR by the form :func:`sparse_run` picks."""
    return sparse_run(Xn, k, include_self, n_threads, form)[0].finish()
