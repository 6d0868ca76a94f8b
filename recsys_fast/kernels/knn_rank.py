"""Item-kNN top-N ranking, the function implicit's item-item recommenders compute.

:class:`ItemKNN` fits the item-item neighbour matrix S (row j: item j's K nearest items, itself
included) from weighted item vectors, then scores ``score(u, i) = sum_j w_uj * S[j, i]`` over
the items j in the user's row (the ratings as weights), leaves the user's rated items out and
keeps the n best. The weightings are implicit's:

- ``cosine`` (``CosineRecommender``): S = cosine of the raw item columns;
- ``tfidf`` (``TFIDFRecommender``): cosine of ``sqrt(r) * idf(user)`` with
  ``idf = log(n_items) - log1p(items the user rated)``;
- ``bm25`` (``BM25Recommender``, ``k1``, ``b``): raw dot products of
  ``r (k1 + 1) / (k1 * len_norm(i) + r) * idf(user)``, ``len_norm = 1 - b + b * |i| / mean|i|``
  (|i|: the sum of item i's ratings);
- ``none`` (``ItemItemRecommender``): raw dot products of the item columns.

Neighbours come from :func:`cosine_topk` / :func:`dot_topk` in float32 (positive similarities
only); scores are summed in float64. Ranking: score descending, equal scores by ascending item
(implicit's heap leaves equal scores in no stated order: the results agree up to ties); an item
whose score is exactly 0 (cancelling weights) counts as not reached. A user who reaches fewer
than n items gets the row padded with item -1 and score NaN.

On the CPU the scoring is one numba pass per user over its neighbour rows
(:mod:`._rank_numba`); on the GPU it runs as user blocks of ``U @ S`` (cuSPARSE) made dense.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend, get_backend
from recsys_fast.kernels.core import check_block_rows
from recsys_fast.kernels.predict import _check_indices, _top_n, as_train_csr
from recsys_fast.kernels.similarity import cosine_topk, dot_topk
from recsys_fast.memory import check_memory, dense_bytes

WEIGHTINGS = ("cosine", "tfidf", "bm25", "none")
_BLOCK_BYTES = 64 << 20  # dense score block on the GPU
_CHUNKS_PER_THREAD = 8  # user chunks per numba thread: balances users of unequal work


def item_weights(R, weighting: str, k1: float = 1.2, b: float = 0.75,
                 backend: str | Backend = "cpu"):
    """The item vectors (items x users CSR) that ``weighting`` compares, from the user x item
    ratings ``R`` (see the module docstring)."""
    be = get_backend(backend)
    xp = be.xp
    X = R.T.tocsr().astype(xp.float64)
    if weighting in ("cosine", "none"):
        return X
    n_items = X.shape[0]
    per_user = xp.bincount(X.indices, minlength=X.shape[1]).astype(xp.float64)
    idf = np.log(float(n_items)) - xp.log1p(per_user)
    if weighting == "tfidf":
        X.data = xp.sqrt(X.data) * idf[X.indices]
        return X
    lengths = xp.asarray(X.sum(axis=1)).ravel()
    norm = (1.0 - b) + b * lengths / lengths.mean()
    rows = be.entry_rows(X.indptr)
    X.data = X.data * (k1 + 1.0) / (k1 * norm[rows] + X.data) * idf[X.indices]
    return X


class ItemKNN:
    """implicit-style item-kNN top-N ranker (see the module docstring).

    Parameters
    ----------
    k : int, default 50
        Neighbours per item, the item itself included (capped at the catalogue size).
    weighting : {"cosine", "tfidf", "bm25", "none"}
    k1, b : float
        BM25's parameters (``bm25`` only; implicit's defaults 1.2 and 0.75).
    backend : "cpu", "gpu" or Backend
    """

    def __init__(self, k: int = 50, weighting: str = "cosine", *, k1: float = 1.2,
                 b: float = 0.75, backend: str | Backend = "cpu"):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        for name, v in (("k1", k1), ("b", b)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
        self.k, self.weighting, self.k1, self.b = int(k), weighting, float(k1), float(b)
        self.backend = get_backend(backend)
        self.train_ = None
        self.similarity_ = None
        self._operands = None

    def fit(self, train: Any) -> ItemKNN:
        """Fit S from a user x item rating matrix (0 = unrated; ratings are the weights).

        Raises
        ------
        ValueError
            No ratings, negative ratings (the weights would cancel), or a bad matrix
            (see :func:`~recsys_fast.kernels.as_train_csr`).
        """
        be, xp = self.backend, self.backend.xp
        R = as_train_csr(train, dtype=np.float32, backend=be)
        if R.nnz == 0:
            raise ValueError(f"train ({R.shape[0]} x {R.shape[1]}) has no ratings")
        if bool((R.data < 0).any()):
            raise ValueError("train holds negative ratings: item-kNN scores use the ratings "
                             "as weights, which must be >= 0")
        X = item_weights(R, self.weighting, self.k1, self.b, be)
        k = min(self.k, X.shape[0])
        topk = dot_topk if self.weighting in ("bm25", "none") else cosine_topk
        self.similarity_ = topk(X, k, include_self=True, backend=be)
        S = self.similarity_
        # the CPU kernel's operands, made once: int64 positions, float64 products
        self._operands = (S.indptr.astype(np.int64), S.indices.astype(np.int64),
                          S.data.astype(np.float64)) if be.host else S.astype(xp.float64)
        self.train_ = R
        return self

    def _require_fit(self):
        if self.train_ is None:
            raise RuntimeError("ItemKNN: call fit() before recommend()")
        return self.train_

    def recommend(self, users: Any, n: int, *, user_items: Any = None,
                  filter_rated: bool = True, batch_size: int | None = None):
        """Top-``n`` items per user, best first (see the module docstring).

        Parameters
        ----------
        users : int or array of int
            Rows of the train matrix; their train ratings are the weights, unless
            ``user_items`` gives other rows.
        n : int, 1 <= n <= n_items
        user_items : sparse matrix (len(users) x n_items), optional
            The users' item weights (a user's current history), instead of train's rows.
        filter_rated : bool, default True
            Leave out the items in each user's row.
        batch_size : int, optional
            Users per dense block (GPU); default keeps a block near 64 MiB.

        Returns
        -------
        items : ndarray of int64, shape (len(users), n)
        scores : ndarray of float64, shape (len(users), n)
        """
        R = self._require_fit()
        be, xp = self.backend, self.backend.xp
        n_items = R.shape[1]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= n_items:
            raise ValueError(f"n must be an integer in [1, {n_items}] (n_items), got {n!r}")
        users = _check_indices(xp, users, R.shape[0], "user indices")
        if user_items is None:
            U = R[users]
        else:
            U = as_train_csr(user_items, dtype=np.float32, backend=be)
            if U.shape != (users.size, n_items):
                raise ValueError(f"user_items has shape {U.shape}, expected "
                                 f"({users.size}, {n_items})")
        batch_size = check_block_rows(batch_size, "batch_size")
        if be.host:
            return _score_cpu(U, self._operands, n_items, int(n), bool(filter_rated))
        if batch_size is None:
            batch_size = max(1, _BLOCK_BYTES // (2 * dense_bytes((1, n_items), np.float64)))
        check_memory(f"score block {min(batch_size, users.size)} x {n_items}",
                     2 * dense_bytes((min(batch_size, users.size), n_items), np.float64))
        S = self._operands
        items_out = xp.empty((users.size, n), dtype=xp.int64)
        scores_out = xp.empty((users.size, n), dtype=xp.float64)
        for b0 in range(0, users.size, batch_size):
            Ub = U[b0 : b0 + batch_size].astype(xp.float64)
            P = (Ub @ S).toarray()
            P[P == 0] = -xp.inf
            if filter_rated:
                P[be.entry_rows(Ub.indptr), Ub.indices] = -xp.inf
            it, sc = _top_n(P, int(n), xp)
            items_out[b0 : b0 + batch_size], scores_out[b0 : b0 + batch_size] = it, sc
        return items_out, scores_out


def explain(model: ItemKNN, user: int, item: int, top: int = 2) -> list[tuple[int, float]]:
    """Why ``model`` scores ``item`` for ``user``: the user's rated items j with the largest
    contributions ``w_uj * S[j, item]`` to the score, as ``(j, contribution)``, largest first
    (ties: lower j), at most ``top``. Host arrays; any backend's fitted model."""
    from recsys_fast.backend import to_host

    R = to_host(model._require_fit())
    S = to_host(model.similarity_).tocsc()
    rated = R.indices[R.indptr[user] : R.indptr[user + 1]]
    weights = R.data[R.indptr[user] : R.indptr[user + 1]].astype(np.float64)
    sims = np.asarray(S[rated, item].todense(), dtype=np.float64).ravel()
    contrib = weights * sims
    order = np.lexsort((rated, -contrib))
    return [(int(rated[i]), float(contrib[i])) for i in order[:top] if contrib[i] > 0]


def _score_cpu(U, S_arrays, n_items: int, n: int, filter_rated: bool):
    import numba

    from recsys_fast.kernels import _rank_numba as nb

    U = scipy.sparse.csr_matrix(U)
    items = np.empty((U.shape[0], n), dtype=np.int64)
    scores = np.empty((U.shape[0], n), dtype=np.float64)
    chunks = max(1, min(U.shape[0], numba.get_num_threads() * _CHUNKS_PER_THREAD))
    nb.score_top_n(U.indptr.astype(np.int64), U.indices.astype(np.int64), U.data, *S_arrays,
                   n_items, filter_rated, chunks, items, scores)
    return items, scores
