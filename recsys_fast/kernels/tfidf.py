"""TF-IDF content similarity, top-k per item, without the dense n x n ``linear_kernel``.

The vectoriser is the course's (``naive.content.TFIDF_PARAMS``, the one source of truth). Its
rows are L2-normalised, so cosine similarity equals the course's ``linear_kernel``; the blocked
:func:`recsys_fast.kernels.cosine_topk` keeps each row's k best without the n x n matrix.

What is kept matches the course exactly: ``argsort()[:-100:-1]`` takes the k = 99 best
*including the item itself*, then ``similar_items[1:]`` drops the first of them, leaving
k - 1 = 98 neighbours. Here each row's k best (self included) are ordered by score descending,
the item itself first among equal scores, then by position; the first is dropped. So when the
item itself is the best (the usual case) it is the one dropped; when another item beats it (a
duplicate description, by rounding) that one is dropped and the item itself kept, as in the
course. ``cosine_topk`` keeps positive similarities only; rows left short of k - 1 are padded
with score-0 items (lowest positions first), which the course lists in ``argsort``'s arbitrary
order: equal up to ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from recsys_fast.backend import Backend, to_host
from recsys_fast.kernels import drivers
from recsys_fast.kernels.core import check_block_rows
from recsys_fast.kernels.similarity import cosine_topk_result
from recsys_fast.kernels.topk_strategies import Auto, Sparse
from recsys_fast.naive.content import KEEP, TFIDF_PARAMS


def _check_descriptions(descriptions: Any) -> tuple[np.ndarray, list[str]]:
    """(ids, texts) from a DataFrame with ``id``/``description`` or a Series indexed by id."""
    if isinstance(descriptions, pd.Series):
        ids, texts = descriptions.index.to_numpy(), descriptions
    elif isinstance(descriptions, pd.DataFrame):
        missing = [c for c in ("id", "description") if c not in descriptions.columns]
        if missing:
            raise ValueError(
                f"descriptions lack columns {missing} (has {list(descriptions.columns)})"
            )
        ids, texts = descriptions["id"].to_numpy(), descriptions["description"]
    else:
        raise TypeError(
            f"descriptions must be a DataFrame (id, description) or a Series indexed by id, "
            f"got {type(descriptions).__name__}"
        )
    if len(ids) == 0:
        raise ValueError("descriptions is empty: nothing to recommend")
    dup = pd.Index(ids).duplicated(keep=False)
    if dup.any():
        raise ValueError(f"descriptions has repeated ids {sorted(set(ids[dup].tolist()))[:10]}")
    bad = np.fromiter((not isinstance(t, str) for t in texts), bool, len(ids))
    if bad.any():
        raise ValueError(f"description is not text (e.g. NaN) for ids {ids[bad][:10].tolist()}")
    return ids, list(texts)


@dataclass
class TfidfNeighbours:
    """Each item's kept neighbours, best first, in the course's order.

    Attributes
    ----------
    ids : ndarray
        Item ids in input order (position p is item ``ids[p]``).
    neighbours : ndarray of int64, shape (n, k - 1)
        Positions of each item's neighbours, best first.
    scores : ndarray of float, shape (n, k - 1)
        Their cosine similarities (0 for padding, see the module notes).
    strategy : str
        The ``cosine_topk`` strategy that ran.
    """

    ids: np.ndarray
    neighbours: np.ndarray
    scores: np.ndarray
    strategy: str = ""

    def __post_init__(self) -> None:
        self._pos = pd.Index(self.ids)

    def results(self) -> dict:
        """The course's results dict: ``{id: [(score, other_id), ...]}``, best first."""
        ids = self.ids
        return {
            ids[p].item() if isinstance(ids[p], np.generic) else ids[p]: list(
                zip(self.scores[p].tolist(), ids[self.neighbours[p]].tolist(), strict=True)
            )
            for p in range(len(ids))
        }

    def recommend(self, item_id: Any, num: int) -> list[tuple[Any, float]]:
        """The ``num`` items most similar to ``item_id``, best first, as ``(other_id, score)``.

        Raises
        ------
        KeyError
            Unknown ``item_id``.
        ValueError
            ``num`` < 1 or more than the neighbours kept.
        """
        if item_id not in self._pos:
            raise KeyError(f"item id {item_id!r} is not in the descriptions")
        p = self._pos.get_loc(item_id)
        kept = self.neighbours.shape[1]
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)):
            raise TypeError(f"num must be an integer, got {num!r}")
        if not 1 <= num <= kept:
            raise ValueError(f"num must be between 1 and {kept} (neighbours kept), got {num}")
        others = self.ids[self.neighbours[p, :num]].tolist()
        return list(zip(others, self.scores[p, :num].tolist(), strict=True))

    def similarity_matrix(self, item_ids: Any = None) -> scipy.sparse.csr_matrix:
        """Kept neighbours (score > 0) as a sparse similarity matrix.

        Parameters
        ----------
        item_ids : array-like, optional
            Order of rows/columns (e.g. an ``Interactions.item_ids``); ids without a
            description get empty rows/columns. Default: ``ids``.
        """
        n = len(self.ids)
        rows = np.repeat(np.arange(n), self.neighbours.shape[1])
        cols = self.neighbours.ravel()
        vals = self.scores.ravel()
        if item_ids is None:
            target = np.arange(n)
            size = n
        else:
            item_ids = np.asarray(item_ids)
            target = pd.Index(item_ids).get_indexer(self.ids)  # -1: not in item_ids
            size = len(item_ids)
        keep = (vals > 0) & (target[rows] >= 0) & (target[cols] >= 0)
        out = scipy.sparse.csr_matrix(
            (vals[keep], (target[rows[keep]], target[cols[keep]])), shape=(size, size)
        )
        out.sum_duplicates()
        return out


def _order_rows(topk: scipy.sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded (n, k) positions/scores of each row's entries, in the course's order."""
    n = topk.shape[0]
    counts = np.diff(topk.indptr)
    if counts.size and counts.max() > k:
        raise AssertionError(f"cosine_topk returned {counts.max()} > k={k} entries in a row")
    rows = np.repeat(np.arange(n), counts)
    slot = np.arange(topk.nnz) - np.repeat(topk.indptr[:-1], counts)
    pos = np.full((n, k), -1, dtype=np.int64)
    val = np.full((n, k), -np.inf, dtype=topk.dtype)
    pos[rows, slot] = topk.indices
    val[rows, slot] = topk.data
    not_self = pos != np.arange(n)[:, None]
    pos_key = np.where(pos < 0, n, pos)
    # primary: score descending; then the item itself; then position
    order = np.lexsort((pos_key, not_self, -val), axis=-1)
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(val, order, axis=1)


def _pad(pos: np.ndarray, val: np.ndarray) -> None:
    """Fill empty slots (-1) with unused score-0 items, lowest positions first (in place)."""
    n, width = pos.shape
    for r in np.flatnonzero((pos < 0).any(axis=1)):
        used = set(pos[r][pos[r] >= 0].tolist())
        used.add(int(r))  # the item itself takes the dropped slot
        free = (p for p in range(n) if p not in used)
        for s in np.flatnonzero(pos[r] < 0):
            p = next(free, -1)
            if p < 0:
                raise AssertionError("fewer free items than empty slots")
            pos[r, s] = p
            val[r, s] = 0.0


def tfidf_topk(
    descriptions: Any,
    k: int = KEEP,
    *,
    block_rows: int | None = None,
    dtype: Any = np.float32,
    backend: str | Backend = "cpu",
    strategy: str = "auto",
) -> TfidfNeighbours:
    """TF-IDF vectors of the descriptions, then each item's k - 1 nearest items (course order).

    Parameters
    ----------
    descriptions : DataFrame with ``id``, ``description``, or Series of text indexed by id
    k : int, default 99
        Slots taken *including the item itself*, as the course's ``argsort()[:-100:-1]``;
        ``k - 1`` neighbours are kept (capped at n - 1 for a small catalogue).
    block_rows, strategy : passed to :func:`recsys_fast.kernels.cosine_topk`
    dtype : float dtype, default float32
    backend : "cpu", "gpu", "dask" or Backend
        Where the top-k runs; vectorising is sklearn's, on the CPU. ``dask``: the top-k runs
        by row blocks on a dask cluster (``cosine_topk(backend="dask")``), the same result.

    Returns
    -------
    TfidfNeighbours

    Raises
    ------
    TypeError, ValueError
        Bad descriptions (missing columns, repeated ids, non-text), ``k`` < 2,
        ``block_rows`` not a positive integer.
    """

    block_rows = check_block_rows(block_rows)
    ids, texts = _check_descriptions(descriptions)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (the item itself plus a neighbour), got {k}")
    be = drivers.array_backend(backend)
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least 2 descriptions to find neighbours, got {n}")
    k = min(int(k), n)
    X = TfidfVectorizer(**TFIDF_PARAMS).fit_transform(texts)
    strategy, block_rows = text_strategy(strategy, block_rows, backend)
    res = cosine_topk_result(
        be.to_device(X.tocsr()), k, include_self=True, block_rows=block_rows,
        strategy=strategy, dtype=dtype, backend=backend,
    )
    return neighbours_from_topk(ids, res.matrix, k, strategy=res.strategy)


def text_strategy(strategy: Any, block_rows: int | None, backend: Any) -> tuple[Any, int | None]:
    """``(strategy, block_rows)`` for ``cosine_topk`` on a TF-IDF matrix: on the in-process
    CPU, ``"auto"`` and ``"sparse"`` run the sparse strategy's rows form (every row in full,
    selected where computed), which is the faster form on text: short rows over many
    features, whose blocks share few columns and whose candidates reach the heaps in
    ascending order (README, "TF-IDF top-k: the rows form"). Anything else passes unchanged."""
    in_process_cpu = not drivers.is_task_driver(backend) and drivers.array_backend(backend).host
    if not in_process_cpu or not isinstance(strategy, str):
        return strategy, block_rows
    if strategy == "auto":
        return Auto(block_rows=block_rows, form="rows"), None
    if strategy == "sparse" and block_rows is None:
        return Sparse(form="rows"), None
    return strategy, block_rows


def neighbours_from_topk(ids: np.ndarray, topk: Any, k: int, strategy: str = "") -> TfidfNeighbours:
    """The course's lists from a top-k similarity matrix that includes each item itself (k
    entries per row at most): best first, the first slot (the item) dropped, padded."""
    topk = to_host(topk).tocsr()
    pos, val = _order_rows(topk, k)
    pos, val = pos[:, 1:].copy(), val[:, 1:].copy()  # the course's similar_items[1:]
    _pad(pos, val)
    return TfidfNeighbours(ids=ids, neighbours=pos, scores=val, strategy=strategy)
