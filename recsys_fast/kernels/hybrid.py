"""Hybrid recommenders the course describes but never codes, built on the kernels.

Three scorers, all on the rating scale so they can stand in for one another:

* CF: :class:`~recsys_fast.kernels.predict.FixedCF` (user- or item-based, top-k cosine);
* content: ``mu_u + sum_j c_ij (r_uj - mu_u) / sum_j |c_ij|`` over the items j the user rated
  among item i's content neighbours (``c`` a sparse item x item similarity, e.g.
  :meth:`recsys_fast.kernels.tfidf.TfidfNeighbours.similarity_matrix`); defined only where the
  user rated at least one of them;
* popularity: the item's IMDB weighted rating over the training ratings
  (:func:`recsys_fast.kernels.popularity.item_popularity`; C for an unrated item).

:class:`SwitchingHybrid` picks one scorer per (user, item); :class:`MixedHybrid` merges two
ranked lists. Both recommend only items the user has not rated, and list equal scores by
ascending item index, at the n-th place too (:func:`top_n_ordered`), so a list is a function of
the scores alone. ``recommend_users`` scores a
batch of users at once (dense blocks of about 64 MiB: the CF block from
:meth:`FixedCF.predict_users`, the content block from two sparse products); ``recommend`` is the
same call for one user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import to_host
from recsys_fast.kernels.core import check_top_n
from recsys_fast.kernels.popularity import item_popularity
from recsys_fast.kernels.predict import FixedCF, _check_indices, as_train_csr
from recsys_fast.memory import dense_bytes

SOURCES = ("cf", "content", "popularity")
BLOCK_BYTES = 64 << 20
"""Target size of one user block's dense item arrays (four of them per user)."""


@dataclass(frozen=True)
class Recommendations:
    """One user's list, best first: item indices, scores and the scorer each came from."""

    items: np.ndarray
    scores: np.ndarray
    sources: list[str]


class _Hybrid:
    """Shared fitting: the CF model, the content matrix, popularity, means and rated items."""

    def __init__(self, cf: FixedCF | None, content: Any, quantile: float):
        if cf is not None and not isinstance(cf, FixedCF):
            raise TypeError(f"cf must be a FixedCF, got {type(cf).__name__}")
        if content is not None and not scipy.sparse.issparse(content):
            raise TypeError(f"content must be a sparse item x item matrix, got {type(content).__name__}")
        self.cf = cf if cf is not None else FixedCF("item", dtype=np.float64)
        self.content = None if content is None else scipy.sparse.csr_matrix(content, dtype=np.float64)
        self.quantile = quantile
        self.train_ = None

    def fit(self, train: Any):
        """Fit the CF model (unless already fitted on a matrix of the same shape) and the rest.

        Raises
        ------
        ValueError
            The content matrix is not n_items square, or a bad rating matrix.
        """
        R = as_train_csr(train, dtype=np.float64)
        n_users, n_items = R.shape
        if self.content is not None and self.content.shape != (n_items, n_items):
            raise ValueError(
                f"content similarity is {self.content.shape}, the ratings have {n_items} items"
            )
        if self.cf.train_ is None or tuple(self.cf.train_.shape) != R.shape:
            self.cf.fit(R)
        counts = np.diff(R.indptr)
        self.user_counts_ = counts
        self.item_counts_ = np.bincount(R.indices, minlength=n_items)
        self.popularity_ = np.asarray(to_host(item_popularity(R, self.quantile).scores))
        mean = float(R.data.mean()) if R.nnz else 0.0
        sums = np.asarray(R.sum(axis=1)).ravel()
        self.user_mean_ = np.where(counts > 0, sums / np.maximum(counts, 1), mean)
        centred = R.copy()
        centred.data -= np.repeat(self.user_mean_, counts)
        self.centred_ = centred
        rated = R.copy()
        rated.data[:] = 1.0
        self.rated_ = rated
        if self.content is not None:  # products with the transposes, built once
            self.content_t_ = self.content.T.tocsr()
            self.abs_content_t_ = abs(self.content_t_)
        self.train_ = R
        return self

    def _require_fit(self):
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before recommend()")
        return self.train_

    def _user(self, user: Any) -> int:
        R = self._require_fit()
        if isinstance(user, (bool, np.bool_)) or not isinstance(user, (int, np.integer)):
            raise TypeError(f"user must be an integer index, got {user!r}")
        return int(_check_indices(np, [user], R.shape[0], "user index")[0])

    def _users(self, users: Any) -> np.ndarray:
        return to_host(_check_indices(np, users, self._require_fit().shape[0], "user indices"))

    def _check_n(self, n: Any) -> int:
        return check_top_n(n, self._require_fit().shape[1])

    def _blocks(self, users: np.ndarray):
        """``users`` in slices whose dense item blocks stay near :data:`BLOCK_BYTES`."""
        per_user = 4 * dense_bytes((1, self.train_.shape[1]), np.float64)
        step = max(1, BLOCK_BYTES // per_user)
        for b0 in range(0, users.size, step):
            yield users[b0 : b0 + step]

    def content_block(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Content estimates of every item for each of ``users`` (rows) and where defined."""
        shape = (users.size, self._require_fit().shape[1])
        if self.content is None:
            return np.full(shape, np.nan), np.zeros(shape, dtype=bool)
        num = (self.centred_[users] @ self.content_t_).toarray()
        den = (self.rated_[users] @ self.abs_content_t_).toarray()
        ok = den > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.where(ok, self.user_mean_[users][:, None] + num / den, np.nan)
        return est, ok

    def content_scores(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """Content estimate of every item for ``user`` and where it is defined."""
        est, ok = self.content_block(np.array([self._user(user)]))
        return est[0], ok[0]

    def _rank_block(self, scores: np.ndarray, users: np.ndarray, n: int):
        """Top-n unrated items per row of ``scores`` (NaN = not a candidate, modified in
        place); padded with -1 / NaN."""
        scores[np.isnan(scores)] = -np.inf
        rated = self.rated_[users]
        scores[np.repeat(np.arange(users.size), np.diff(rated.indptr)), rated.indices] = -np.inf
        return top_n_ordered(scores, n)

    @staticmethod
    def _one(items, scores, sources) -> Recommendations:
        return Recommendations(items[0], scores[0],
                               [SOURCES[s] if s >= 0 else "" for s in sources[0]])


class SwitchingHybrid(_Hybrid):
    """One scorer per (user, item): CF when both are warm, else content, else popularity.

    Rule: ``score(u, i)`` is the CF prediction when user u and item i each have at least
    ``min_ratings`` training ratings; otherwise the content estimate where it is defined (a
    content matrix was given and u rated one of i's content neighbours); otherwise the item's
    weighted rating. So a cold-start user gets content-based and popular items, and a new item
    reaches warm users through its description.

    Parameters
    ----------
    cf : FixedCF, optional
        Default ``FixedCF("item", dtype=float64)``; fitted by :meth:`fit` unless already fitted.
    content : sparse matrix (n_items x n_items), optional
    min_ratings : int, default 5
    quantile : float, default 0.90
        Popularity's ``m`` quantile.
    """

    def __init__(
        self,
        cf: FixedCF | None = None,
        *,
        content: Any = None,
        min_ratings: int = 5,
        quantile: float = 0.90,
    ):
        super().__init__(cf, content, quantile)
        if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)):
            raise TypeError(f"min_ratings must be an integer, got {min_ratings!r}")
        if min_ratings < 0:
            raise ValueError(f"min_ratings must be >= 0, got {min_ratings}")
        self.min_ratings = int(min_ratings)

    def score_block(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every item for each of ``users`` (checked indices) and the index into
        ``SOURCES`` of each score's scorer."""
        content, has_content = self.content_block(users)
        source = np.where(has_content, 1, 2).astype(np.int8)
        warm_users = np.flatnonzero(self.user_counts_[users] >= self.min_ratings)
        warm_items = self.item_counts_ >= self.min_ratings
        source[np.ix_(warm_users, np.flatnonzero(warm_items))] = 0
        out = np.where(source == 2, self.popularity_[None, :], content)
        if warm_users.size and warm_items.any():
            cf = np.asarray(to_host(self.cf.predict_users(users[warm_users])), dtype=np.float64)
            out[warm_users] = np.where(warm_items[None, :], cf, out[warm_users])
        return out, source

    def scores(self, user: Any) -> tuple[np.ndarray, np.ndarray]:
        """Score of every item for ``user`` and the index into ``SOURCES`` of its scorer."""
        out, source = self.score_block(np.array([self._user(user)]))
        return out[0], source[0]

    def recommend_users(self, users: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-``n`` unrated items for each of ``users`` (row indices), best first.

        Returns ``(items, scores, sources)``, each ``(len(users), n)``: item indices (-1 pads a
        user with fewer than n unrated items), scores (NaN pads) and the index into ``SOURCES``
        of each item's scorer (-1 pads). Equal scores list items ascending.
        """
        n = self._check_n(n)
        users = self._users(users)
        items = np.empty((users.size, n), dtype=np.int64)
        scores = np.empty((users.size, n))
        sources = np.empty((users.size, n), dtype=np.int8)
        b0 = 0
        for ub in self._blocks(users):
            block, source = self.score_block(ub)
            it, sc = self._rank_block(block, ub, n)
            rows = slice(b0, b0 + ub.size)
            items[rows], scores[rows] = it, sc
            sources[rows] = np.where(it >= 0, np.take_along_axis(source, np.maximum(it, 0), 1), -1)
            b0 += ub.size
        return items, scores, sources

    def recommend(self, user: Any, n: int) -> Recommendations:
        """Top-``n`` unrated items for ``user`` (a row index), best first, with their scorer."""
        return self._one(*self.recommend_users([self._user(user)], n))


class MixedHybrid(_Hybrid):
    """Two ranked lists merged: CF and content (or popularity without a content matrix).

    Rule: the CF list is the user's top unrated items by CF prediction; the other list is
    their top unrated items by content estimate (only items where it is defined), or by
    weighted rating when no content matrix is given. The result takes one item from each list
    in turn, CF first; an item already taken is skipped (it keeps its first source); when one
    list is exhausted the other continues; rows are padded with -1 / NaN if both run out. The
    scores are each scorer's own (not comparable across sources; the order is the merge order).

    Parameters
    ----------
    cf : FixedCF, optional
    content : sparse matrix (n_items x n_items), optional
    quantile : float, default 0.90
    """

    def __init__(self, cf: FixedCF | None = None, *, content: Any = None, quantile: float = 0.90):
        super().__init__(cf, content, quantile)

    def _other_lists(self, users: np.ndarray, n: int):
        """The second list per user: by content estimate, else by weighted rating."""
        if self.content is not None:
            return (*self._rank_block(self.content_block(users)[0], users, n), 1)
        block = np.repeat(self.popularity_[None, :], users.size, axis=0)
        return (*self._rank_block(block, users, n), 2)

    def recommend_users(self, users: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merged top-``n`` unrated items for each of ``users`` (row indices).

        Returns ``(items, scores, sources)`` as :meth:`SwitchingHybrid.recommend_users`.
        """
        n = self._check_n(n)
        users = self._users(users)
        items = np.full((users.size, n), -1, dtype=np.int64)
        scores = np.full((users.size, n), np.nan)
        sources = np.full((users.size, n), -1, dtype=np.int8)
        b0 = 0
        for ub in self._blocks(users):
            cf = np.asarray(to_host(self.cf.predict_users(ub)), dtype=np.float64)
            cf_items, cf_vals = self._rank_block(cf, ub, n)
            o_items, o_vals, o_source = self._other_lists(ub, n)
            for r in range(ub.size):
                lists = ((cf_items[r], cf_vals[r], 0), (o_items[r], o_vals[r], o_source))
                _merge(lists, n, items[b0 + r], scores[b0 + r], sources[b0 + r])
            b0 += ub.size
        return items, scores, sources

    def recommend(self, user: Any, n: int) -> Recommendations:
        """Merged top-``n`` unrated items for ``user`` (a row index)."""
        return self._one(*self.recommend_users([self._user(user)], n))


def _merge(lists, n: int, items: np.ndarray, scores: np.ndarray, sources: np.ndarray) -> None:
    """Alternate between the two ranked lists (first list first), skipping taken items and
    padding (-1), into the output rows."""
    taken: set[int] = set()
    cursors = [0, 0]
    turn = filled = 0
    while filled < n and (cursors[0] < n or cursors[1] < n):
        its, scs, source = lists[turn]
        while cursors[turn] < n:
            it = int(its[cursors[turn]])
            cursors[turn] += 1
            if it >= 0 and it not in taken:
                taken.add(it)
                items[filled], scores[filled], sources[filled] = it, scs[cursors[turn] - 1], source
                filled += 1
                break
        turn = 1 - turn


def top_n_ordered(P: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``P``: the n best entries by (score descending, item ascending), ties at
    the n-th place included; ``-inf`` entries are reported as (-1, NaN)."""
    rows = P.shape[0]
    if n < P.shape[1]:
        cut = -np.partition(-P, n - 1, axis=1)[:, n - 1 : n]  # each row's n-th best score
        above = P > cut
        tied = P == cut
        need = n - above.sum(axis=1, keepdims=True)  # tied items to take, lowest index first
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
        cols = np.nonzero(chosen)[1].reshape(rows, n)  # ascending item within each row
    else:
        cols = np.broadcast_to(np.arange(P.shape[1]), P.shape)
    vals = np.take_along_axis(P, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    items = np.take_along_axis(cols, order, axis=1).astype(np.int64)
    scores = np.take_along_axis(vals, order, axis=1).astype(np.float64)
    missing = np.isneginf(scores)
    items[missing] = -1
    scores[missing] = np.nan
    return items, scores
