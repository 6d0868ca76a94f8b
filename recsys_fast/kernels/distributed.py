"""Row-block kernels on a ``dask.distributed`` cluster (the ``dask`` backend).

Each function computes the same result as its single-process kernel, split into row ranges:
the input is scattered once to every worker (``client.scatter(..., broadcast=True)``), one task
per row range runs the existing CPU kernel on it, and the pieces are gathered and stacked in
order. Rows per task come from the smallest worker memory limit (and are cut further so that
every worker thread gets a few tasks). The cluster is chosen by
:func:`recsys_fast.dask_backend.dask_client`; :func:`recsys_fast.dask_backend.last_cluster`
tells where the latest call ran.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import numpy as np

from recsys_fast.backend import CPU
from recsys_fast.dask_backend import (
    dask_client,
    even_ranges,
    map_ranges,
    require_dask,
    total_threads,
    worker_memory,
)
from recsys_fast.errors import ConfigError, MemoryBudgetError
from recsys_fast.kernels import _topk_numba as nb
from recsys_fast.kernels import drivers
from recsys_fast.kernels._topk_auto import choose
from recsys_fast.kernels._topk_dense import cpu_row_block, pair_block
from recsys_fast.kernels._topk_rows import (
    RowTopk,
    merge_pair_heaps,
    pair_topk_task,
    row_topk_task,
    stack,
)
from recsys_fast.kernels.core import check_top_n, topk_input
from recsys_fast.kernels.similarity import TopKResult
from recsys_fast.kernels.topk_strategies import strategy_for
from recsys_fast.memory import available_bytes, check_memory, dense_bytes

TASKS_PER_THREAD = 4  # row ranges per worker thread: rows differ in cost, so balance by count
# Pair tasks per worker thread. Each returns a heap set of every row, and every extra set
# costs heap work and merging: at 25m one task per thread measured 8 % faster on one worker
# and 12 % faster on two than two per thread (blocks are dealt by cost, so the parts are even).
PARTS_PER_THREAD = 1


def _rows_per_task(n: int, per_row: int, resident: int, mem: int, threads: int, what: str) -> int:
    """Rows per task: a task's share of a worker's memory after what the worker holds."""
    from recsys_fast.backend import block_rows_for

    if resident > mem // 2:
        raise MemoryBudgetError(f"{what} held on each dask worker", resident, mem // 2)
    fit = block_rows_for(max(1, per_row), CPU, 0.5, n_rows=max(1, n),
                         free_bytes=(mem - resident) // 2)
    return max(1, min(fit, -(-n // (TASKS_PER_THREAD * threads))))


def _blas_threads(n_threads: int | None) -> int:
    """BLAS threads the single-process call would use (its products round accordingly)."""
    if n_threads is not None:
        return int(n_threads)
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


def cosine_topk_dask(
    X: Any,
    k: int,
    *,
    include_self: bool = False,
    block_rows: int | None = None,
    n_threads: int | None = None,
    strategy: Any = "auto",
    dtype: Any = np.float32,
    rows_per_task: int | None = None,
    pairs: bool | None = None,
    transport: str = "auto",
    client: Any = None,
):
    """``cosine_topk(X, k, ...)`` computed by row blocks on a dask cluster; the same result.

    The normalised X is scattered to every worker once (or, for ``sparse`` on workers that see
    this machine's files, the arrays the kernel reads are prepared here once and shared, see
    ``transport``); each task returns the top-k of a row
    range (:class:`recsys_fast.kernels._topk_rows.RowTopk`) and the CSR pieces are stacked in
    order. ``auto`` picks the strategy as the single-process call does (``dense`` only while a
    dense copy of X also fits in a quarter of a worker's memory limit). ``dense`` tasks run
    BLAS with this process's thread count (``n_threads`` if given), since OpenBLAS rounds a
    product differently with another thread count; with several workers per machine that
    oversubscribes the cores.

    Parameters
    ----------
    X, k, include_self, block_rows, n_threads, strategy, dtype
        As :func:`recsys_fast.kernels.cosine_topk` (``n_threads`` only informs ``auto``).
    rows_per_task : int, optional
        Rows per task; default from the smallest worker memory limit and the thread count.
    pairs : bool, optional
        ``sparse`` only. True: each pair is computed once, as in the single-process kernel:
        one task per worker thread takes a share of the rows (dealt by cost) and returns
        size-k heaps for *all* rows, merged here (half the multiply-adds of the row ranges,
        ``tasks x n_rows x k`` candidates gathered). False: row ranges, each row in full.
        Default: pairs while the gathered heaps fit in a quarter of the local memory budget.
    transport : {"auto", "shared", "scatter"}
        ``sparse`` only. ``shared``: the relabelled CSR/CSC and the scheduling costs are built
        once in this process (with its threads) and written to shared memory, which every
        worker maps (:mod:`recsys_fast.dask_shared`): one copy on the machine, no pickling,
        no per-worker preparation. ``scatter``: X is scattered and each worker prepares its
        own copy (what works across machines). ``auto``: shared when every worker sees the
        shared folder and it has room, else scatter.
    client : distributed.Client, optional
        Cluster to use; default as :func:`recsys_fast.dask_backend.dask_client`.

    Returns
    -------
    TopKResult
        ``matrix`` equal, index for index, to ``cosine_topk(X, k)`` with the same strategy;
        ``tasks`` the task form and count (``("pairs", 2)``, ``("row ranges", 16)``);
        ``timing`` the transport that ran and the seconds of each phase (``prepare_s``: normalise, and for ``shared`` the preparation
        and the write; ``tasks_s``: scatter, tasks and gather; ``merge_s``: merge or stack);
        ``strategy`` the strategy that ran.

    Raises
    ------
    BackendUnavailableError
        dask.distributed is not installed.
    MemoryBudgetError
        X (and, for ``dense``, its dense copy) does not fit in half a worker's memory.
    ConfigError
        ``transport="shared"`` and some worker does not see the shared folder.
    """
    require_dask()
    if transport not in ("auto", "shared", "scatter"):
        raise ValueError(f"transport must be 'auto', 'shared' or 'scatter', got {transport!r}")
    t0 = time.perf_counter()
    strat = strategy_for(strategy, block_rows=block_rows)
    if getattr(strat, "tf32", None) or getattr(strat, "bf16", False):
        raise ValueError(f"{'tf32' if strat.tf32 else 'bf16'}=True needs the GPU backend "
                         "(a tensor-core mode); the dask backend runs the CPU strategies")
    block_rows = getattr(strat, "block_rows", None)
    _, Xn, k, dt, threads = topk_input(X, k, include_self, dtype, n_threads, CPU)
    n, m = Xn.shape
    with dask_client(client) as c:
        mem = worker_memory(c)
        dense_size = dense_bytes((n, m), dt)
        used = strat.name
        if used == "auto":
            used = choose(Xn, k, include_self, threads, CPU)
            if used == "dense" and dense_size > mem // 4:
                used = "sparse"
        x_bytes = Xn.data.nbytes + Xn.indices.nbytes + Xn.indptr.nbytes
        item = dt.itemsize
        if used == "sparse":
            block = 1
            resident = 3 * x_bytes + 8 * n * 4  # X, relabelled CSR and CSC, perm and costs
            resident += n * k * (item + 4) + n * (item + 12)  # one task's heaps, accumulator
            per_row = 2 * k * (item + 4)
        elif used == "dense":
            block = block_rows or pair_block(n, item, CPU)
            resident = x_bytes + dense_size + 3 * block * block * item
            per_row = 2 * (-(-n // block)) * k * (item + 8)
        else:
            block = block_rows or cpu_row_block(n, item)
            resident = 2 * x_bytes + block * (6 * n * item + (m * item if used == "spmm" else 0))
            per_row = 2 * k * (item + 4)
        rows = rows_per_task or _rows_per_task(n, per_row, resident, mem, total_threads(c),
                                               f"cosine_topk ({used}) input")
        plan = RowTopk(Xn, k, include_self, used, block, _blas_threads(n_threads))
        n_parts = PARTS_PER_THREAD * total_threads(c)
        if used == "sparse" and pairs is None:
            pairs = 2 * n_parts * n * k * (item + 4) <= available_bytes() // 4
        with contextlib.ExitStack() as cleanup:
            perm = None
            if used == "sparse" and transport != "scatter":
                perm = _share_sparse(c, plan, bool(pairs), transport, cleanup)
            timing = {"transport": "scatter" if perm is None else "shared memory",
                      "prepare_s": time.perf_counter() - t0}
            t1 = time.perf_counter()
            if used == "sparse" and pairs:
                sets = map_ranges(c, plan, pair_topk_task, [(p, n_parts) for p in range(n_parts)])
                t2 = time.perf_counter()
                out = merge_pair_heaps(nb.popularity_order(Xn) if perm is None else perm, sets, k)
                tasks = ("pairs", n_parts)
            else:
                ranges = even_ranges(n, rows, block if used == "dense" else 1)
                pieces = map_ranges(c, plan, row_topk_task, ranges)
                t2 = time.perf_counter()
                out = stack(pieces, n, dt)
                tasks = ("row ranges", len(ranges))
        timing.update(tasks_s=t2 - t1, merge_s=time.perf_counter() - t2)
    return TopKResult(out, used, dt.name, tasks=tasks, timing=timing)


@drivers.register("cosine_topk", "dask")
def _cosine_topk_task_driver(X: Any, k: int, **kwargs: Any):
    """``cosine_topk_result(..., backend="dask")``: :func:`cosine_topk_dask`, which runs the CPU
    strategies (no TF32 or bfloat16 tensor-core modes)."""
    return cosine_topk_dask(X, k, **kwargs)


def _share_sparse(c, plan, blocks: bool, transport: str, cleanup) -> np.ndarray | None:
    """Prepare ``plan``'s sparse arrays here and put them in shared memory for the workers;
    the popularity order, or None (``auto``) where the workers cannot see the folder or it
    has no room. Registers the release and removal on ``cleanup``."""
    from recsys_fast.dask_shared import SharedArrays, SharedSpaceError

    shared = cleanup.enter_context(SharedArrays())
    if not shared.visible_to(c):
        if transport == "shared":
            raise ConfigError(f"transport='shared': some workers of this cluster cannot read "
                              f"{shared.path} (other machines?); use transport='scatter'")
        return None
    cleanup.callback(shared.release, c)
    try:
        return plan.share(shared, blocks)
    except SharedSpaceError:
        if transport == "shared":
            raise
        return None


# -- FixedCF ----------------------------------------------------------------------------------
def _local_copy(model):
    """The fitted model as a single-process one (what a worker runs)."""
    local = copy.copy(model)
    local.driver = None
    return local


def _user_ranges(model, users: np.ndarray, per_user: int, c, rows_per_task: int | None):
    n_items = model.train_.shape[1]
    resident = sum(
        a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
        for a in (model.train_, model.centred_, model.rated_, model.neighbours_)
    )
    rows = rows_per_task or _rows_per_task(users.size, per_user, 3 * resident, worker_memory(c),
                                           total_threads(c), f"FixedCF model ({n_items} items)")
    return even_ranges(users.size, rows)


def _predict_task(model, a: int, b: int, users: np.ndarray):
    return model.predict_users(users)


def _recommend_task(model, a: int, b: int, users: np.ndarray, n: int, batch_size):
    return model.recommend(users, n, batch_size=batch_size)


@drivers.register("FixedCF.predict_users", "dask")
def predict_users_dask(model, users: Any, *, rows_per_task: int | None = None, client=None):
    """``model.predict_users(users)`` by user ranges on a dask cluster; the same array.

    Parameters
    ----------
    model : FixedCF
        Fitted, on the CPU.
    users : array of int
    rows_per_task : int, optional
        Users per task; default from the worker memory limit.
    client : distributed.Client, optional

    Returns
    -------
    ndarray, shape (len(users), n_items)
    """
    from recsys_fast.kernels.predict import _check_indices

    require_dask()
    R = model._require_fit()
    users = _check_indices(np, users, R.shape[0], "user indices")
    check_memory(f"prediction block {users.size} x {R.shape[1]}",
                 dense_bytes((users.size, R.shape[1]), model.dtype))
    with dask_client(client) as c:
        per_user = 3 * dense_bytes((1, R.shape[1]), model.dtype)
        ranges = _user_ranges(model, users, per_user, c, rows_per_task)
        parts = map_ranges(c, _local_copy(model), _predict_task, ranges, sliced=users)
    if not parts:
        return np.empty((0, R.shape[1]), dtype=model.dtype)
    return np.concatenate(parts, axis=0)


def _recommend_call(model, users: Any, n: Any):
    """The fitted model's train matrix and the checked users of a ``recommend(users, n)``."""
    from recsys_fast.kernels.predict import _check_indices

    require_dask()
    R = model._require_fit()
    check_top_n(n, R.shape[1])
    return R, _check_indices(np, users, R.shape[0], "user indices")


@drivers.register("FixedCF.recommend", "dask")
def recommend_dask(model, users: Any, n: int, *, batch_size: int | None = None,
                   rows_per_task: int | None = None, client=None):
    """``model.recommend(users, n)`` by user ranges on a dask cluster; the same arrays.

    Each task runs the single-process ``recommend`` on its users (in ``batch_size`` blocks);
    ties are settled per row, so the split does not change the answer.

    Returns
    -------
    items : ndarray of int64, shape (len(users), n)
    scores : ndarray, shape (len(users), n)
    """
    R, users = _recommend_call(model, users, n)
    n_items = R.shape[1]
    with dask_client(client) as c:
        per_user = 2 * n * 16 + (3 * dense_bytes((1, n_items), model.dtype) if batch_size else 0)
        ranges = _user_ranges(model, users, per_user, c, rows_per_task)
        parts = map_ranges(c, _local_copy(model), _recommend_task, ranges, int(n), batch_size,
                           sliced=users)
    if not parts:
        return np.empty((0, n), dtype=np.int64), np.empty((0, n), dtype=model.dtype)
    return (np.concatenate([p[0] for p in parts], axis=0),
            np.concatenate([p[1] for p in parts], axis=0))


# -- item-kNN / user-kNN ranking ---------------------------------------------------------------
class _UserRows:
    """The users of a recommend call and their ``user_items`` rows (or None), sliced together
    for the tasks."""

    def __init__(self, users: np.ndarray, user_items):
        self.users, self.user_items = users, user_items

    def __getitem__(self, part: slice):
        rows = None if self.user_items is None else self.user_items[part]
        return self.users[part], rows


def _rank_task(model, a: int, b: int, part, n: int, kwargs: dict):
    users, user_items = part
    if user_items is not None:
        kwargs = {**kwargs, "user_items": user_items}
    return model.recommend(users, n, **kwargs)


@drivers.register("ItemKNN.recommend", "dask")
@drivers.register("UserKNN.recommend", "dask")
def rank_recommend_dask(model, users: Any, n: int, *, user_items: Any = None,
                        rows_per_task: int | None = None, client=None, **kwargs):
    """``model.recommend(users, n, ...)`` of a fitted :class:`~recsys_fast.kernels.ItemKNN` or
    :class:`~recsys_fast.kernels.UserKNN` by user ranges on a dask cluster: each task runs the
    single-process call on its users (their ``user_items`` rows with them); the same arrays.
    """
    R, users = _recommend_call(model, users, n)
    n_items = R.shape[1]
    if user_items is not None:
        import scipy.sparse

        user_items = scipy.sparse.csr_matrix(user_items)
        if user_items.shape != (users.size, n_items):
            raise ValueError(f"user_items has shape {user_items.shape}, expected "
                             f"({users.size}, {n_items})")
    local = _local_copy(model)
    with dask_client(client) as c:
        resident = sum(a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
                       for a in (R, model.similarity_))
        rows = rows_per_task or _rows_per_task(
            users.size, 2 * n * 16 + 16 * n_items, 3 * resident, worker_memory(c),
            total_threads(c), f"{type(model).__name__} model ({n_items} items)")
        parts = map_ranges(c, local, _rank_task, even_ranges(users.size, rows), int(n), kwargs,
                           sliced=_UserRows(users, user_items))
    if not parts:
        return np.empty((0, n), dtype=np.int64), np.empty((0, n), dtype=np.float64)
    return (np.concatenate([p[0] for p in parts], axis=0),
            np.concatenate([p[1] for p in parts], axis=0))


# -- user x item CSR from a Parquet folder ----------------------------------------------------
def _ids_task(frame):
    return (np.unique(frame["user_id"].to_numpy()), np.unique(frame["item_id"].to_numpy()))


def _csr_task(frame, user_ids: np.ndarray, item_ids: np.ndarray, dtype):
    from recsys_fast.kernels.interactions import build_user_item_csr

    rows = np.searchsorted(user_ids, frame["user_id"].to_numpy())
    cols = np.searchsorted(item_ids, frame["item_id"].to_numpy())
    r0 = int(rows.min()) if rows.size else 0
    r1 = int(rows.max()) + 1 if rows.size else 0
    block = build_user_item_csr(rows - r0, cols, frame["rating"].to_numpy(),
                                shape=(r1 - r0, item_ids.size), dtype=dtype)
    return r0, block


def user_item_csr_from_parquet(path: Any, *, dtype: Any = np.float32, client: Any = None):
    """User x item CSR of a ratings Parquet folder, built partition by partition on dask.

    Reads ``path`` with ``dask.dataframe.read_parquet`` (columns ``user_id, item_id,
    rating``), indexes users and items by their sorted unique ids (as
    :attr:`Interactions.user_idx` / ``item_idx``) and builds one CSR block per partition with
    :func:`recsys_fast.kernels.build_user_item_csr`; the blocks are stacked by user. The
    result equals ``build_user_item_csr`` of the whole table when each partition holds a range
    of users that no other partition holds (as ``data synth --format parquet`` writes them).

    Returns
    -------
    matrix : csr_matrix, shape (n_users, n_items)
    user_ids, item_ids : ndarray
        The original id of each row / column.

    Raises
    ------
    BackendUnavailableError
        dask is not installed.
    ValueError
        Two partitions share users (the blocks would overlap).
    RecsysFastError
        ``path`` holds a synthetic Parquet write that did not finish.
    """
    import scipy.sparse

    require_dask()
    import dask
    import dask.dataframe as dd

    from recsys_fast.data.parquet import check_complete

    check_complete(path)
    ddf = dd.read_parquet(str(path), columns=["user_id", "item_id", "rating"])
    parts = ddf.to_delayed()
    with dask_client(client) as c:
        ids = c.compute([dask.delayed(_ids_task)(p) for p in parts], sync=True)
        user_ids = np.unique(np.concatenate([u for u, _ in ids])) if ids else np.zeros(0, int)
        item_ids = np.unique(np.concatenate([i for _, i in ids])) if ids else np.zeros(0, int)
        per_part = [u.size for u, _ in ids]
        [u_remote, i_remote] = c.scatter([user_ids, item_ids], broadcast=True, hash=False)
        tasks = [dask.delayed(_csr_task)(p, u_remote, i_remote, np.dtype(dtype)) for p in parts]
        blocks = c.compute(tasks, sync=True)
    blocks = [(r0, b) for (r0, b), n in zip(blocks, per_part, strict=True) if n]
    blocks.sort(key=lambda rb: rb[0])
    row = 0
    for r0, b in blocks:
        if r0 < row:
            raise ValueError(f"partitions of {path} share users (rows from {r0} seen twice); "
                             "build from the whole table instead")
        row = r0 + b.shape[0]
    if not blocks:
        return scipy.sparse.csr_matrix((0, 0), dtype=dtype), user_ids, item_ids
    # disjoint and sorted, the blocks cover every user once: every id came from some block
    out = scipy.sparse.vstack([b for _, b in blocks], format="csr")
    out.has_sorted_indices = True
    return out, user_ids, item_ids
