"""Item-item cosine top-k of a ratings Parquet folder, out of core, on a dask cluster.

:func:`cosine_topk_parquet` computes what ``cosine_topk(X, k)`` computes for the items x users
matrix X of the folder's ratings, without ever holding X in one place. Three kinds of task:

1. **stats**, one per Parquet file: the file's items, their rating counts, and its user range.
   The client merges them (O(items)), checks that no two files share a user (a user split over
   two files would lose the pairs between them), and numbers the items by falling popularity.
2. **prepare**, one per file: the file's user x item CSR (popularity numbering, columns ascending,
   a repeated (user, item) keeps its last rating, as ``build_user_item_csr``), written as three
   ``.npy`` files to a scratch folder; returns each item's sum of squares and its triangle work.
3. **block**, one per item block ``[b0, b1)``: a dense float64 accumulator of
   ``(b1 - b0) x (n_items - b0)`` entries; the task loads each prepared file in turn, divides its
   ratings by the item norms and adds every user's pair products ``v_ui v_uj`` for i in the
   block and j >= b0 (:func:`._ooc_numba.accumulate_block`). Each pair of items is thus
   accumulated in the block of its more popular item only. The task returns its rows' top-k
   (over columns ``>= b0``) and, for every later item j, the k best items of the block in column
   j: the candidates of row j that lie left of j's own block. The client merges them into each
   row's top k: exact, as every neighbour of a row is either in its own block's row or in an
   earlier block's column.

Block tasks hold the prepared files of a group (up to :data:`GROUP_SHARE` of the worker memory
limit; several files at once, so each accumulator row is visited once per group, not once per
file) and run the rows one at a time (Gustavson): item i's accumulator row takes the rows of
its users in turn, so one row is written at a time. The prepared files are compact
(:func:`compact`: columns as uint16 up to 65,536 items, half-star ratings as uint8), and the
accumulator takes raw ratings: the row's norm is applied as the row is gathered, each
column's once at the end.

Memory: a block task holds its accumulator (at most ``block_bytes``, by default
:data:`BLOCK_SHARE` of the smallest worker memory limit) and one group of prepared files; a
prepare task one Parquet file. The client holds O(items x k) numbers per block. Nothing grows
with the number of ratings except the scratch folder (3 to 8 bytes per rating, removed at the
end), the number of file groups and the count of tasks.

On a cluster of several machines the Parquet folder and the scratch folder must be shared
storage that every worker reads and writes by the same path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys_fast.dask_backend import dask_client, require_dask, total_threads, worker_memory
from recsys_fast.errors import MemoryBudgetError, RecsysFastError

COLUMNS = ("user_id", "item_id", "rating")
BLOCK_SHARE = 0.35  # of the smallest worker memory limit, for one block's accumulator
GROUP_SHARE = 0.2  # of it, for the prepared files a block task holds at once
BLOCKS_PER_THREAD = 3  # blocks differ in cost: a few per worker thread balance the load
ACC_BYTES = 8  # float64 accumulation


@dataclass
class OutOfCoreResult:
    """``matrix``: CSR (n_items, n_items), row i the k most similar items of item ``item_ids[i]``
    (similarity > 0, columns ascending), as ``cosine_topk``; ``item_ids``: sorted item ids;
    ``stats``: what the call read and did (files, ratings, users, blocks, tasks, bytes read,
    pair multiply-adds, seconds per phase)."""

    matrix: Any
    item_ids: np.ndarray
    stats: dict = field(default_factory=dict)


def parquet_files(path: Any) -> list[str]:
    """The folder's ``*.parquet`` files, sorted (a single file is its own list)."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise FileNotFoundError(f"no Parquet file or folder at {p}")
    files = sorted(str(f) for f in p.glob("*.parquet"))
    if not files:
        raise RecsysFastError(f"{p} holds no .parquet files")
    return files


def read_ratings(file: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``user_id, item_id, rating`` of one Parquet file as numpy arrays, and the bytes read;
    a clear error for a missing column, a null, or a rating that is not finite."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file, columns=list(COLUMNS))
    except (KeyError, ValueError) as exc:
        have = pq.read_schema(file).names
        missing = [c for c in COLUMNS if c not in have]
        if missing:
            raise RecsysFastError(f"{file}: missing column(s) {', '.join(missing)} (has "
                                  f"{', '.join(have)})") from None
        raise RecsysFastError(f"{file}: cannot read {', '.join(COLUMNS)}: {exc}") from None
    users, items = _id_column(table, "user_id", file), _id_column(table, "item_id", file)
    ratings = _column(table, "rating", file).astype(np.float32, copy=False)
    if ratings.size and not np.isfinite(ratings).all():
        at = int(np.flatnonzero(~np.isfinite(ratings))[0])
        raise RecsysFastError(f"{file}: rating in row {at} is {ratings[at]}, not finite")
    return users, items, ratings, int(table.nbytes)


def _column(table, name: str, file: str) -> np.ndarray:
    """One column as numpy; RecsysFastError naming the file when it holds nulls."""
    col = table.column(name)
    if col.null_count:
        raise RecsysFastError(f"{file}: column {name} has {col.null_count} null value(s)")
    return col.to_numpy()


def _id_column(table, name: str, file: str) -> np.ndarray:
    """An id column (:func:`_column`) that must hold integers."""
    ids = _column(table, name, file)
    if ids.dtype.kind not in "iu":
        raise RecsysFastError(f"{file}: {name} must hold integers, got {ids.dtype}")
    return ids


def _user_rows(users: np.ndarray) -> tuple[np.ndarray, int]:
    """Each rating's local user row (users numbered in order of first id) and the count."""
    if users.size == 0:
        return np.zeros(0, np.int64), 0
    if bool((users[1:] >= users[:-1]).all()):  # sorted by user, as the writer stores them
        starts = np.empty(users.size, bool)
        starts[0] = True
        np.not_equal(users[1:], users[:-1], out=starts[1:])
        rows = np.cumsum(starts) - 1
        return rows, int(rows[-1]) + 1
    uniq, rows = np.unique(users, return_inverse=True)
    return rows, uniq.size


# -- tasks ------------------------------------------------------------------------------------
def _dense_ids(ids: np.ndarray) -> bool:
    """Whether ids are non-negative and small enough to index a table (bincount, lookup)."""
    return ids.size > 0 and int(ids.min()) >= 0 and int(ids.max()) < 4 * ids.size + (1 << 22)


def _user_span(file: str) -> tuple[int, int] | None:
    """The file's smallest and largest ``user_id`` from its row-group statistics, or None
    where a row group has none."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file).metadata
    col = meta.schema.names.index("user_id") if "user_id" in meta.schema.names else None
    if col is None:
        return None
    lo, hi = [], []
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(col).statistics
        if st is None or not st.has_min_max:
            return None
        lo.append(int(st.min))
        hi.append(int(st.max))
    return (min(lo), max(hi)) if lo else (0, -1)


def stats_task(file: str) -> dict:
    """The file's items and their rating counts, and its user range; reads ``item_id`` only
    where the file's statistics give the user range (the other columns are checked when the
    file is prepared)."""
    import pyarrow.parquet as pq

    span = _user_span(file)
    if span is None:
        users, items, _, nbytes = read_ratings(file)
        span = (int(users.min()), int(users.max())) if users.size else (0, -1)
    else:
        try:
            table = pq.read_table(file, columns=["item_id"])
        except (KeyError, ValueError):
            read_ratings(file)  # names what is missing
            raise
        items = _id_column(table, "item_id", file)
        nbytes = int(items.nbytes)
    if _dense_ids(items):  # a count per id value: no sort
        counts = np.bincount(items)
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    else:
        ids, counts = np.unique(items, return_counts=True)
    return {"file": file, "items": ids, "counts": counts, "n_ratings": int(items.size),
            "user_min": span[0], "user_max": span[1], "bytes": nbytes,
            "disk_bytes": os.path.getsize(file)}


def _item_columns(items: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Each rating's column: ``pos`` of its item's place in the sorted ``ids`` (every item
    is among them), by a lookup table where the ids are small, else by binary search."""
    if _dense_ids(ids):
        table = np.zeros(int(ids[-1]) + 1, np.int64)
        table[ids] = pos
        return table[items]
    return pos[np.searchsorted(ids, items)]


def compact(indices: np.ndarray, data: np.ndarray, n_items: int):
    """The block tasks read each rating once per block and group: the smallest exact form.
    Columns as uint16 when there are at most 65,536 items; ratings as uint8 twice their value
    when every rating is a half-integer in [0, 127.5] (the caller then scales by 0.5), else
    float32."""
    idx = indices.astype(np.uint16 if n_items <= 1 << 16 else np.int32)
    twice = data.astype(np.float64) * 2.0
    if data.size == 0 or (twice.min() >= 0 and twice.max() <= 255
                          and bool((twice == np.round(twice)).all())):
        return idx, twice.astype(np.uint8)
    return idx, data.astype(np.float32)


def prepare_task(file: str, lookup_ids: np.ndarray, lookup_pos: np.ndarray, n_items: int,
                 out: str) -> dict:
    """Write the file's CSR (popularity numbering) to ``out``.{indptr,indices,data}.npy."""
    from recsys_fast.kernels.interactions import build_user_item_csr

    users, items, ratings, nbytes = read_ratings(file)
    rows, n_users = _user_rows(users)
    cols = _item_columns(items, lookup_ids, lookup_pos)
    R = build_user_item_csr(rows, cols, ratings, shape=(n_users, n_items), dtype=np.float32)
    R.sort_indices()
    sq = np.bincount(R.indices, weights=np.square(R.data, dtype=np.float64), minlength=n_items)
    # triangle work of each item: the user's items at or after it in popularity order
    deg = np.diff(R.indptr)
    after = np.repeat(R.indptr[1:], deg) - np.arange(R.nnz)
    work = np.bincount(R.indices, weights=after, minlength=n_items)
    indices, data = compact(R.indices, R.data, n_items)
    np.save(out + ".indptr.npy", R.indptr.astype(np.int64))
    np.save(out + ".indices.npy", indices)
    np.save(out + ".data.npy", data)
    return {"sq": sq, "work": work, "nnz": int(R.nnz), "bytes": nbytes, "n_users": n_users,
            "prepared_bytes": int(indices.nbytes + data.nbytes + (n_users + 1) * 8),
            "gram_pair_madds": float(deg.astype(np.float64) @ deg)}


def _load_group(prepared: list[str]):
    """The prepared files stacked into one CSR (rows: their users in turn), the factor its
    values carry (0.5: uint8 twice the rating, see :func:`compact`; else 1) and the bytes
    read. Each file is copied into arrays allocated once for the group (no second copy while
    joining); files stored in different forms are joined as float32 ratings."""
    maps = [[np.load(out + ext, mmap_mode="r") for ext in (".indptr.npy", ".indices.npy",
                                                          ".data.npy")] for out in prepared]
    kinds = {m[2].dtype for m in maps}
    mixed = len(kinds) > 1
    n_users = sum(m[0].size - 1 for m in maps)
    nnz = sum(m[1].size for m in maps)
    indptr = np.empty(n_users + 1, np.int64)
    indices = np.empty(nnz, maps[0][1].dtype if maps else np.int32)
    data = np.empty(nnz, np.float32 if mixed else (maps[0][2].dtype if maps else np.float32))
    indptr[0] = 0
    r = e = 0
    nbytes = 0
    for ptr, idx, val in maps:
        nu, ne = ptr.size - 1, idx.size
        indptr[r + 1:r + nu + 1] = ptr[1:] + e
        indices[e:e + ne] = idx
        if mixed:
            data[e:e + ne] = val * np.float32(0.5 if val.dtype == np.uint8 else 1.0)
        else:
            data[e:e + ne] = val
        nbytes += ptr.nbytes + idx.nbytes + val.nbytes
        r, e = r + nu, e + ne
    del maps
    scale = 0.5 if (not mixed and data.dtype == np.uint8) else 1.0
    return indptr, indices, data, scale, nbytes


def file_groups(sizes: list[int], group_bytes: int) -> list[list[int]]:
    """Consecutive files whose prepared bytes stay within ``group_bytes`` (one file at least)."""
    groups, cur, total = [], [], 0
    for i, b in enumerate(sizes):
        if cur and total + b > group_bytes:
            groups.append(cur)
            cur, total = [], 0
        cur.append(i)
        total += b
    if cur:
        groups.append(cur)
    return groups


def block_task(prepared: list[str], groups: list[list[int]], b0: int, b1: int,
               inv_norm: np.ndarray, k: int, include_self: bool) -> dict:
    """One item block's accumulator over every prepared file, a group of files at a time
    (each accumulator row is then visited once per group), reduced to triplets."""
    from recsys_fast.kernels import _ooc_numba as nb

    n_items = inv_norm.size
    t0 = time.perf_counter()
    acc = np.zeros((b1 - b0, n_items - b0), np.float64)
    madds, nbytes = 0, 0
    for g in groups:
        indptr, indices, vals, scale, read = _load_group([prepared[i] for i in g])
        if indptr.size > 2**31:  # the kernel numbers a group's users in int32
            raise RecsysFastError(f"a file group holds {indptr.size - 1:,} users, over 2**31")
        nbytes += read
        madds += int(nb.accumulate_block(indptr, indices, vals, inv_norm * scale**2, b0, b1,
                                         acc))
        del indptr, indices, vals
    acc *= inv_norm[b0:]  # each column's norm, divided out once
    t_acc = time.perf_counter() - t0
    if not include_self:
        np.fill_diagonal(acc[:, : b1 - b0], 0.0)
    n_rows = b1 - b0
    cap = n_rows * min(k, acc.shape[1]) + (n_items - b1) * min(k, n_rows)
    r, c, v = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.float64)
    w = nb.topk_rows(acc, k, b0, r, c, v)
    w += nb.topk_columns(acc, n_rows, k, b0, r[w:], c[w:], v[w:])
    return {"rows": r[:w].copy(), "cols": c[:w].copy(), "vals": v[:w].copy(), "madds": madds,
            "bytes": nbytes, "acc_bytes": int(acc.nbytes), "b0": b0, "b1": b1,
            "accumulate_s": t_acc, "seconds": time.perf_counter() - t0}


def exact_rows_task(file: str, item_ids: np.ndarray, rows: np.ndarray) -> dict:
    """One file's share of the exact float64 dot products of items ``rows`` (sorted-id
    indices) with every item, and of every item's sum of squares (scipy products)."""
    from recsys_fast.kernels.interactions import build_user_item_csr

    users, items, ratings, _ = read_ratings(file)
    urows, n_users = _user_rows(users)
    R = build_user_item_csr(urows, np.searchsorted(item_ids, items), ratings,
                            shape=(n_users, item_ids.size), dtype=np.float64)
    sq = np.asarray(R.multiply(R).sum(axis=0)).ravel()
    return {"dot": (R[:, rows].T @ R).toarray(), "sq": sq}


def cosine_rows_parquet(path: Any, rows: Any, *, client: Any = None) -> np.ndarray:
    """Exact float64 cosine similarities of the items at sorted-id indices ``rows`` with every
    item of the Parquet folder, ``(len(rows), n_items)``, out of core (one task per file, each
    returning ``len(rows) x n_items`` numbers, summed here as they arrive): the reference the
    out-of-core top-k is checked against."""
    distributed = require_dask()
    files = parquet_files(path)
    rows = np.asarray(rows, dtype=np.int64)
    with dask_client(client) as c:
        stats = c.gather([c.submit(stats_task, f, pure=False) for f in files])
        ids, _, _ = _number_items(stats)
        ids_f = c.scatter(ids, broadcast=True, hash=False)
        futures = [c.submit(exact_rows_task, f, ids_f, rows, pure=False) for f in files]
        dot, sq = np.zeros((rows.size, ids.size)), np.zeros(ids.size)
        for done, part in distributed.as_completed(futures, loop=c.loop, with_results=True):
            dot += part["dot"]
            sq += part["sq"]
            done.release()
    norm = np.sqrt(sq)
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return dot * inv[rows][:, None] * inv[None, :]


# -- plan -------------------------------------------------------------------------------------
def plan_blocks(work: np.ndarray, budget: int, n_blocks: int) -> list[tuple[int, int]]:
    """Consecutive item blocks of about equal ``work``, each accumulator within ``budget``
    bytes (rows x (n - b0) x 8); MemoryBudgetError if one item's row does not fit."""
    n = work.size
    if n == 0:
        return []
    if n * ACC_BYTES > budget:
        raise MemoryBudgetError(f"one accumulator row of {n:,} items (the block budget: "
                                f"block_bytes, or {BLOCK_SHARE:.0%} of the smallest worker "
                                "memory limit)", n * ACC_BYTES, budget)
    target = max(float(work.sum()) / max(n_blocks, 1), 1.0)
    blocks, b0, acc = [], 0, 0.0
    for i in range(n):
        rows_fit = (i + 1 - b0) * (n - b0) * ACC_BYTES <= budget
        if i > b0 and (not rows_fit or acc + work[i] > target * 1.0001):
            blocks.append((b0, i))
            b0, acc = i, 0.0
        acc += float(work[i])
    blocks.append((b0, n))
    return blocks


class DaskRunner:
    """Runs the tasks on a dask client: each list of calls submitted at once, results in
    order; shared inputs scattered to every worker once."""

    def __init__(self, client: Any):
        self.client = client

    def share(self, value: Any) -> Any:
        return self.client.scatter(value, broadcast=True, hash=False)

    def map(self, fn, calls: list[tuple], on_result=None) -> list:
        distributed = require_dask()
        futures = [self.client.submit(fn, *args, pure=False) for args in calls]
        if on_result is None:
            return self.client.gather(futures)
        at = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(futures)
        for done, result in distributed.as_completed(futures, loop=self.client.loop,
                                                     with_results=True):
            out[at[done.key]] = result
            on_result(result)
            done.release()
        return out

    def memory(self) -> int:
        return worker_memory(self.client)

    def threads(self) -> int:
        return total_threads(self.client)


class InlineRunner:
    """Runs the same tasks one after another in this process (no dask): the memory budget is
    this machine's available memory."""

    def share(self, value: Any) -> Any:
        return value

    def map(self, fn, calls: list[tuple], on_result=None) -> list:
        out = []
        for args in calls:
            out.append(fn(*args))
            if on_result is not None:
                on_result(out[-1])
        return out

    def memory(self) -> int:
        from recsys_fast.memory import available_bytes

        return available_bytes()

    def threads(self) -> int:
        return 1


def cosine_topk_parquet(path: Any, k: int, *, include_self: bool = False, client: Any = None,
                        block_bytes: int | None = None, n_blocks: int | None = None,
                        scratch: Any = None, progress=None) -> OutOfCoreResult:
    """Item-item cosine top-k of the ratings in a Parquet folder, out of core (see the module
    docstring for the tasks and their memory).

    Parameters
    ----------
    path : folder of ``*.parquet`` files (or one file) with ``user_id``, ``item_id`` (integers)
        and ``rating`` columns; no user may appear in two files.
    k : neighbours per item, ``1 <= k <= n_items - 1`` (``n_items`` with ``include_self``).
    include_self : whether an item may be its own neighbour.
    client : a ``distributed.Client``; default as every dask-backend call
        (:func:`recsys_fast.dask_backend.dask_client`); ``"inline"`` runs the same tasks one
        after another in this process, without dask.
    block_bytes : bytes of one block's accumulator; default :data:`BLOCK_SHARE` of the
        smallest worker memory limit.
    n_blocks : blocks to aim for (more where memory requires); default
        :data:`BLOCKS_PER_THREAD` per worker thread.
    scratch : folder for the prepared files (default: a new folder under the data cache,
        removed at the end); every worker must reach it by this path.
    progress : callable taking one line of text, or None.

    Raises
    ------
    BackendUnavailableError
        dask is not installed (and ``client`` is not ``"inline"``).
    RecsysFastError
        A file lacks a column, holds a null or a non-finite rating, or two files share users.
    MemoryBudgetError
        One accumulator row (n_items x 8 bytes) exceeds ``block_bytes``.
    ValueError
        ``k`` out of range.
    """
    from recsys_fast.data.parquet import check_complete

    if Path(path).is_dir():
        check_complete(path)
    files = parquet_files(path)
    args = (files, k, include_self, block_bytes, n_blocks, scratch, progress)
    if isinstance(client, str) and client == "inline":
        return _compute(InlineRunner(), *args)
    with dask_client(client) as c:  # BackendUnavailableError without dask
        return _compute(DaskRunner(c), *args)


def _compute(run, files, k, include_self, block_bytes, n_blocks, scratch,
             progress) -> OutOfCoreResult:
    from recsys_fast.kernels import _ooc_numba as nb

    say = progress or (lambda line: None)
    times: dict[str, float] = {}
    with _scratch_folder(scratch) as tmp:
        t0 = time.perf_counter()
        stats = run.map(stats_task, [(f,) for f in files])
        times["stats_s"] = time.perf_counter() - t0
        ids, perm, counts = _number_items(stats)
        n = ids.size
        _check_users(stats)
        hi = n if include_self else n - 1
        if not 1 <= k <= max(hi, 0):
            raise ValueError(f"k must be in [1, {hi}] for {n} items, got {k}")
        say(f"out-of-core cosine_topk: {len(files)} files, {sum(s['n_ratings'] for s in stats):,}"
            f" ratings, {n:,} items ({times['stats_s']:.1f} s to read the ids)")
        t0 = time.perf_counter()
        pos = np.empty(n, np.int64)
        pos[perm] = np.arange(n)  # sorted-id index -> popularity number
        ids_f, pos_f = run.share(ids), run.share(pos)
        outs = [str(Path(tmp) / f"part-{i:05d}") for i in range(len(files))]
        prep = run.map(prepare_task, [(f, ids_f, pos_f, n, o)
                                      for f, o in zip(files, outs, strict=True)])
        times["prepare_s"] = time.perf_counter() - t0
        sq = np.sum([p["sq"] for p in prep], axis=0)
        work = np.sum([p["work"] for p in prep], axis=0)
        norm = np.sqrt(sq)
        inv = np.zeros(n, np.float64)
        np.divide(1.0, norm, out=inv, where=norm > 0)
        mem = run.memory()
        budget = int(block_bytes or BLOCK_SHARE * mem)
        groups = file_groups([p["prepared_bytes"] for p in prep], int(GROUP_SHARE * mem))
        blocks = plan_blocks(work, budget, n_blocks or BLOCKS_PER_THREAD * run.threads())
        say(f"out-of-core cosine_topk: prepared in {times['prepare_s']:.1f} s; {len(blocks)} "
            f"item blocks, accumulators up to {_largest(blocks, n) / 2**30:.2f} GiB, "
            f"{len(groups)} file group(s)")
        t0 = time.perf_counter()
        inv_f = run.share(inv)
        done = []

        def report(part: dict) -> None:
            done.append(part)
            say(f"out-of-core cosine_topk: block {len(done)}/{len(blocks)} done (items "
                f"{part['b0']:,}-{part['b1']:,}, {part['seconds']:.1f} s)")

        parts = run.map(block_task, [(outs, groups, b0, b1, inv_f, k, include_self)
                                     for b0, b1 in blocks], on_result=report)
        times["blocks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = perm[np.concatenate([p["rows"] for p in parts])]
    cols = perm[np.concatenate([p["cols"] for p in parts])]
    vals = np.concatenate([p["vals"] for p in parts])
    indptr, out_cols, out_vals = nb.merge_candidates(rows, cols, vals, n, k)
    import scipy.sparse

    index_dtype = np.int32 if n < 2**31 else np.int64
    matrix = scipy.sparse.csr_matrix(
        (out_vals.astype(np.float32), out_cols.astype(index_dtype), indptr.astype(index_dtype)),
        shape=(n, n))
    matrix.has_sorted_indices = True
    times["merge_s"] = time.perf_counter() - t0
    stats_out = {
        "files": len(files), "ratings": int(sum(p["nnz"] for p in prep)),
        "users": int(sum(p["n_users"] for p in prep)), "items": int(n),
        "blocks": [list(b) for b in blocks], "tasks": 2 * len(files) + len(blocks),
        "file_groups": len(groups),
        "parquet_bytes_on_disk": int(sum(s["disk_bytes"] for s in stats)),
        "parquet_passes": 2,
        "bytes_decoded_parquet": int(sum(s["bytes"] for s in stats) + sum(p["bytes"] for p in prep)),
        "bytes_read_prepared": int(sum(p["bytes"] for p in parts)),
        "pair_madds": int(sum(p["madds"] for p in parts)),
        "gram_pair_madds": float(sum(p["gram_pair_madds"] for p in prep)),
        "largest_accumulator_bytes": int(max((p["acc_bytes"] for p in parts), default=0)),
        "block_tasks": [{key: p[key] for key in ("b0", "b1", "madds", "acc_bytes",
                                                  "accumulate_s", "seconds")} for p in parts],
        "block_budget_bytes": budget, "item_counts_top": int(counts.max()) if n else 0,
        **{k_: round(v, 3) for k_, v in times.items()},
    }
    return OutOfCoreResult(matrix, ids, stats_out)


def _largest(blocks, n: int) -> int:
    return max(((b1 - b0) * (n - b0) * ACC_BYTES for b0, b1 in blocks), default=0)


def _number_items(stats: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted item ids, the sorted-id indices in popularity order (most rated first, ties by
    id), and each sorted id's rating count."""
    if not stats:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    all_ids = np.concatenate([s["items"] for s in stats])
    all_counts = np.concatenate([s["counts"] for s in stats])
    ids, inv = np.unique(all_ids, return_inverse=True)
    counts = np.bincount(inv, weights=all_counts, minlength=ids.size).astype(np.int64)
    perm = np.lexsort((np.arange(ids.size), -counts))
    return ids, perm, counts


def _check_users(stats: list[dict]) -> None:
    """RecsysFastError naming two files whose user ranges overlap."""
    spans = sorted((s["user_min"], s["user_max"], s["file"]) for s in stats if s["n_ratings"])
    for (_, hi_a, fa), (lo_b, _, fb) in zip(spans, spans[1:], strict=False):
        if lo_b <= hi_a:
            raise RecsysFastError(
                f"{Path(fa).name} and {Path(fb).name} hold overlapping user ranges; the "
                "out-of-core top-k needs every user's ratings in one file (write the folder "
                "partitioned by user, as `recsys-fast data synth --format parquet` does)")


@contextlib.contextmanager
def _scratch_folder(scratch: Any):
    if scratch is not None:
        folder = Path(scratch) / f"ooc-{uuid.uuid4().hex[:12]}"
    else:
        from recsys_fast.data.download import cache_dir

        base = cache_dir() / "ooc-scratch"
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="ooc-", dir=base))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
