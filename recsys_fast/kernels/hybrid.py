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
ranked lists. Both recommend only items the user has not rated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import to_host
from recsys_fast.kernels.core import check_top_n
from recsys_fast.kernels.popularity import item_popularity
from recsys_fast.kernels.predict import FixedCF, _check_indices, _top_n, as_train_csr

SOURCES = ("cf", "content", "popularity")


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

    def _check_n(self, n: Any) -> int:
        return check_top_n(n, self._require_fit().shape[1])

    def content_scores(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """Content estimate of every item for ``user`` and where it is defined."""
        n_items = self._require_fit().shape[1]
        if self.content is None:
            return np.full(n_items, np.nan), np.zeros(n_items, dtype=bool)
        num = np.asarray((self.centred_[user] @ self.content.T).todense()).ravel()
        den = np.asarray((self.rated_[user] @ abs(self.content).T).todense()).ravel()
        ok = den > 0
        est = np.full(n_items, np.nan)
        est[ok] = self.user_mean_[user] + num[ok] / den[ok]
        return est, ok

    def _rank(self, scores: np.ndarray, user: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n unrated items by ``scores`` (NaN = not a candidate); padded with -1 / NaN."""
        s = np.where(np.isnan(scores), -np.inf, scores)
        s[self.rated_[user].indices] = -np.inf
        items, vals = _top_n(s[None, :], n, np)
        return items[0], vals[0]


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

    def scores(self, user: Any) -> tuple[np.ndarray, np.ndarray]:
        """Score of every item for ``user`` and the index into ``SOURCES`` of its scorer."""
        user = self._user(user)
        n_items = self.train_.shape[1]
        content, has_content = self.content_scores(user)
        source = np.where(has_content, 1, 2)
        if self.user_counts_[user] >= self.min_ratings:
            source[self.item_counts_ >= self.min_ratings] = 0
        out = np.where(source == 2, self.popularity_, content)
        cf_items = np.flatnonzero(source == 0)
        if cf_items.size:
            users = np.full(cf_items.size, user)
            out[cf_items] = to_host(self.cf.predict(users, cf_items))
        assert out.shape == (n_items,)
        return out, source

    def recommend(self, user: Any, n: int) -> Recommendations:
        """Top-``n`` unrated items for ``user`` (a row index), best first, with their scorer."""
        n = self._check_n(n)
        scores, source = self.scores(user)
        items, vals = self._rank(scores, self._user(user), n)
        sources = [SOURCES[source[i]] if i >= 0 else "" for i in items]
        return Recommendations(items, vals, sources)


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

    def recommend(self, user: Any, n: int) -> Recommendations:
        """Merged top-``n`` unrated items for ``user`` (a row index)."""
        n = self._check_n(n)
        user = self._user(user)
        cf_items, cf_vals = self.cf.recommend([user], n)
        lists = [(to_host(cf_items)[0], to_host(cf_vals)[0], "cf")]
        if self.content is not None:
            est, _ok = self.content_scores(user)
            lists.append((*self._rank(est, user, n), "content"))
        else:
            lists.append((*self._rank(self.popularity_.copy(), user, n), "popularity"))
        items, vals, sources, taken = [], [], [], set()
        cursors = [0, 0]
        turn = 0
        while len(items) < n and any(c < n for c in cursors):
            its, scs, name = lists[turn]
            while cursors[turn] < n:
                it, sc = int(its[cursors[turn]]), float(scs[cursors[turn]])
                cursors[turn] += 1
                if it >= 0 and it not in taken:
                    taken.add(it)
                    items.append(it)
                    vals.append(sc)
                    sources.append(name)
                    break
            turn = 1 - turn
        pad = n - len(items)
        return Recommendations(
            np.array(items + [-1] * pad, dtype=np.int64),
            np.array(vals + [np.nan] * pad),
            sources + [""] * pad,
        )
