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

:class:`UserKNN` is the user-side counterpart: ``score(u, i) = sum_v s(u, v) * r_vi`` over u's
k most similar users (cosine of the rating rows), with the same ranking rules.

On the CPU the scoring is one numba pass per user over the rows it sums
(:mod:`._rank_numba`); on the GPU it runs as user blocks of ``U @ S`` (cuSPARSE) made dense.
:func:`explain` lists the rated items that scored an item most (item-kNN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend, get_backend
from recsys_fast.kernels import drivers
from recsys_fast.kernels.core import check_block_rows, check_top_n
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


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _ratings(train: Any, be: Backend, what: str):
    R = as_train_csr(train, dtype=np.float32, backend=be)
    if R.nnz == 0:
        raise ValueError(f"train ({R.shape[0]} x {R.shape[1]}) has no ratings")
    if bool((R.data < 0).any()):
        raise ValueError(f"train holds negative ratings: {what} scores use the ratings as "
                         "weights, which must be >= 0")
    return R


class _Ranker:
    """What both kNN rankers share: the checks, and scoring ``U @ S`` with rated items out."""

    name = ""

    def __init__(self, backend: str | Backend):
        self.driver = backend if drivers.is_task_driver(backend) else None  # e.g. "dask"
        self.backend = drivers.array_backend(backend)
        self.train_ = None
        self.similarity_ = None
        self._operands = None  # S as the scoring reads it: CPU (indptr, indices, data); GPU CSR

    def _set_operands(self, S) -> None:
        xp = self.backend.xp
        # made once: int64 positions, float64 products
        self._operands = (S.indptr.astype(np.int64), S.indices.astype(np.int64),
                          S.data.astype(np.float64)) if self.backend.host else S.astype(xp.float64)

    def _require_fit(self):
        if self.train_ is None:
            raise RuntimeError(f"{self.name}: call fit() before recommend()")
        return self.train_

    def _check_call(self, users: Any, n: Any):
        R = self._require_fit()
        n = check_top_n(n, R.shape[1])
        return _check_indices(self.backend.xp, users, R.shape[0], "user indices"), n

    def _rank(self, U, F, n: int, batch_size: int | None):
        """Top-``n`` of ``U @ S`` per row, the items of F's row left out (None: none)."""
        be, xp = self.backend, self.backend.xp
        n_items = self.train_.shape[1]
        batch_size = check_block_rows(batch_size, "batch_size")
        if be.host:
            return _score_cpu(U, self._operands, F, n_items, n)
        rows = U.shape[0]
        if batch_size is None:
            batch_size = max(1, _BLOCK_BYTES // (2 * dense_bytes((1, n_items), np.float64)))
        check_memory(f"score block {min(batch_size, rows)} x {n_items}",
                     2 * dense_bytes((min(batch_size, rows), n_items), np.float64))
        items_out = xp.empty((rows, n), dtype=xp.int64)
        scores_out = xp.empty((rows, n), dtype=xp.float64)
        for b0 in range(0, rows, batch_size):
            P = (U[b0 : b0 + batch_size].astype(xp.float64) @ self._operands).toarray()
            P[P == 0] = -xp.inf
            if F is not None:
                Fb = F[b0 : b0 + batch_size]
                P[be.entry_rows(Fb.indptr), Fb.indices] = -xp.inf
            it, sc = _top_n(P, n, xp)
            items_out[b0 : b0 + batch_size], scores_out[b0 : b0 + batch_size] = it, sc
        return items_out, scores_out


class ItemKNN(_Ranker):
    """implicit-style item-kNN top-N ranker (see the module docstring).

    Parameters
    ----------
    k : int, default 50
        Neighbours per item, the item itself included (capped at the catalogue size).
    weighting : {"cosine", "tfidf", "bm25", "none"}
    k1, b : float
        BM25's parameters (``bm25`` only; implicit's defaults 1.2 and 0.75).
    backend : "cpu", "gpu", "dask" or Backend
        ``dask``: the model lives on the CPU of this process; ``fit`` runs the cosine neighbour
        search on the cluster (``cosine``, ``tfidf``; the raw-product weightings run here) and
        ``recommend`` runs by user ranges on it, with the CPU backend's results
        (:func:`recsys_fast.kernels.distributed.rank_recommend_dask`).
    """

    name = "ItemKNN"

    def __init__(self, k: int = 50, weighting: str = "cosine", *, k1: float = 1.2,
                 b: float = 0.75, backend: str | Backend = "cpu"):
        k = _check_k(k)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        for name, v in (("k1", k1), ("b", b)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
        super().__init__(backend)
        self.k, self.weighting, self.k1, self.b = k, weighting, float(k1), float(b)

    def fit(self, train: Any) -> ItemKNN:
        """Fit S from a user x item rating matrix (0 = unrated; ratings are the weights).

        Raises
        ------
        ValueError
            No ratings, negative ratings (the weights would cancel), or a bad matrix
            (see :func:`~recsys_fast.kernels.as_train_csr`).
        """
        be = self.backend
        R = _ratings(train, be, "item-kNN")
        X = item_weights(R, self.weighting, self.k1, self.b, be)
        k = min(self.k, X.shape[0])
        if self.weighting in ("bm25", "none"):  # raw products: in this process on a task driver
            self.similarity_ = dot_topk(X, k, include_self=True, backend=be)
        else:
            self.similarity_ = cosine_topk(X, k, include_self=True, backend=self.driver or be)
        self._set_operands(self.similarity_)
        self.train_ = R
        return self

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
        remote = drivers.task_impl("ItemKNN.recommend", self.driver)
        if remote is not None:
            return remote(self, users, n, user_items=user_items, filter_rated=filter_rated,
                          batch_size=batch_size)
        users, n = self._check_call(users, n)
        R, be = self.train_, self.backend
        if user_items is None:
            U = R[users]
        else:
            U = as_train_csr(user_items, dtype=np.float32, backend=be)
            if U.shape != (users.size, R.shape[1]):
                raise ValueError(f"user_items has shape {U.shape}, expected "
                                 f"({users.size}, {R.shape[1]})")
        return self._rank(U, U if filter_rated else None, n, batch_size)


class UserKNN(_Ranker):
    """User-kNN top-N ranker: ``score(u, i) = sum_v s(u, v) * r_vi`` over u's ``k`` most
    similar users v (cosine of the rating rows, positive similarities only, u itself not
    among them), rated items left out; the same ranking and padding rules as :class:`ItemKNN`.

    Parameters
    ----------
    k : int, default 50
        Neighbours per user (capped at n_users - 1).
    backend : "cpu", "gpu", "dask" or Backend
        ``dask``: as :class:`ItemKNN`.
    """

    name = "UserKNN"

    def __init__(self, k: int = 50, *, backend: str | Backend = "cpu"):
        super().__init__(backend)
        self.k = _check_k(k)

    def fit(self, train: Any) -> UserKNN:
        """Fit the user neighbours from a user x item rating matrix (0 = unrated).

        Raises
        ------
        ValueError
            Fewer than two users, no ratings, negative ratings, or a bad matrix.
        """
        be = self.backend
        R = _ratings(train, be, "user-kNN")
        if R.shape[0] < 2:
            raise ValueError(f"user-kNN needs at least 2 users, got {R.shape[0]}")
        self.similarity_ = cosine_topk(R, min(self.k, R.shape[0] - 1), backend=self.driver or be)
        self._set_operands(R)  # scores: the neighbours' similarities times their ratings
        self.train_ = R
        return self

    def recommend(self, users: Any, n: int, *, filter_rated: bool = True,
                  batch_size: int | None = None):
        """Top-``n`` items per user, best first; the arguments and result as
        :meth:`ItemKNN.recommend` (without ``user_items``: a user's neighbours are fitted)."""
        remote = drivers.task_impl("UserKNN.recommend", self.driver)
        if remote is not None:
            return remote(self, users, n, filter_rated=filter_rated, batch_size=batch_size)
        users, n = self._check_call(users, n)
        return self._rank(self.similarity_[users], self.train_[users] if filter_rated else None,
                          n, batch_size)


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


def _score_cpu(U, S_arrays, F, n_items: int, n: int):
    import numba

    from recsys_fast.kernels import _rank_numba as nb

    U = scipy.sparse.csr_matrix(U)
    i64 = np.int64
    if F is None:
        f_indptr, f_indices = np.zeros(U.shape[0] + 1, i64), np.zeros(0, i64)
    else:
        F = scipy.sparse.csr_matrix(F)
        f_indptr, f_indices = F.indptr.astype(i64), F.indices.astype(i64)
    items = np.empty((U.shape[0], n), dtype=i64)
    scores = np.empty((U.shape[0], n), dtype=np.float64)
    chunks = max(1, min(U.shape[0], numba.get_num_threads() * _CHUNKS_PER_THREAD))
    nb.score_top_n(U.indptr.astype(i64), U.indices.astype(i64), U.data, *S_arrays, f_indptr,
                   f_indices, n_items, chunks, items, scores)
    return items, scores
