"""The two model interfaces the quality protocol evaluates, and their shared behaviour.

Every model is fit on ``train``: a scipy CSR ``n_users x n_items`` float32 rating matrix on
internal indices (0 = not rated). A :class:`RatingPredictor` predicts ratings for
``(user, item)`` index pairs; a :class:`Recommender` lists, per user, the ``n`` best items the
user did not rate in ``train``, as a :class:`TopN` (items padded with ``-1``, scores with NaN).

Each implementation declares ``name``, ``requires`` (optional third-party import names) and
``install_note`` where pip alone does not do, as benchmark adapters do (:mod:`recsys_fast.optional`),
and a one-line ``note`` saying what it computes. :meth:`Model.skip_reason` gives the reason a
model cannot run here (a missing package) or ``None``: the evaluation records such a model as
skipped with that reason.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse

from recsys_fast import optional


class TopN(NamedTuple):
    """Per-user recommendations, best first: ``items`` int64 and ``scores`` float, both of
    shape ``(n_users, n)``; a short list is padded with item ``-1`` and score NaN."""

    items: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, rows: int, n: int) -> TopN:
        """All padding: ``rows`` lists of ``n`` slots, to be filled from the front."""
        return cls(np.full((rows, n), -1, dtype=np.int64), np.full((rows, n), np.nan))


class Model:
    """Shared part of every model: identity, requirements, version, the fitted matrix."""

    name: str = ""
    requires: tuple[str, ...] = ()
    note: str = ""
    #: where ``pip install`` of the ``requires`` distributions is not the whole story, one line
    install_note: str = ""

    train_: scipy.sparse.csr_matrix | None = None

    @classmethod
    def missing(cls) -> list[str]:
        """The optional packages this model needs that cannot be found here."""
        return optional.missing(cls.requires)

    @classmethod
    def skip_reason(cls) -> str | None:
        """Why this model cannot run here for want of a package (None when it can)."""
        return optional.skip_reason(cls.requires, cls.install_note)

    def version(self) -> str:
        """Version of the library computing the model (recsys-fast's for our own)."""
        return optional.version_of(self.requires).split()[-1]

    def _set_train(self, train: Any) -> scipy.sparse.csr_matrix:
        """``train`` checked and stored as canonical float32 CSR."""
        if not scipy.sparse.issparse(train):
            raise TypeError(f"{self.name}: train must be a scipy sparse matrix, "
                            f"got {type(train).__name__}")
        if train.ndim != 2 or 0 in train.shape:
            raise ValueError(f"{self.name}: train must be a non-empty 2-D matrix, "
                             f"got shape {train.shape}")
        R = scipy.sparse.csr_matrix(train, dtype=np.float32, copy=True)
        R.sum_duplicates()
        R.eliminate_zeros()
        if R.nnz == 0:
            raise ValueError(f"{self.name}: train {R.shape} holds no ratings")
        if not np.isfinite(R.data).all():
            raise ValueError(f"{self.name}: train holds NaN or infinite ratings")
        self.train_ = R
        return R

    def _require_fit(self) -> scipy.sparse.csr_matrix:
        if self.train_ is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        return self.train_

    def _recommend_args(self, users: Any, n: Any) -> tuple[scipy.sparse.csr_matrix, np.ndarray,
                                                            int]:
        """A recommend call's fitted train matrix, checked users and n (capped at n_items)."""
        R = self._require_fit()
        u, _ = check_pairs(users, np.zeros(np.size(users), np.int64), R.shape)
        return R, u, check_n(n, R.shape[1])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def check_pairs(users: Any, items: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``users``, ``items`` as int64 arrays of equal length within ``shape``; else an error
    naming the first bad index."""
    out = []
    for arr, n, what in ((users, shape[0], "user"), (items, shape[1], "item")):
        a = np.asarray(arr)
        if a.ndim != 1:
            raise ValueError(f"{what} indices must be 1-D, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise TypeError(f"{what} indices must be integers, got dtype {a.dtype}")
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= n)
        if bad.any():
            raise IndexError(f"{what} index {int(a[bad][0])} is outside 0..{n - 1}")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ValueError(f"users ({out[0].size}) and items ({out[1].size}) differ in length")
    return out[0], out[1]


def check_n(n: Any, n_items: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return min(int(n), n_items)


class RatingPredictor(Model, abc.ABC):
    """Predicts ratings; ``recommend`` ranks a user's predictions over the unrated items."""

    @abc.abstractmethod
    def fit(self, train: Any) -> RatingPredictor:
        """Learn from ``train`` (CSR users x items); returns ``self``."""

    @abc.abstractmethod
    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings (float64) for the pairs ``zip(users, items)`` of indices."""

    def predict_users(self, users: np.ndarray) -> np.ndarray:
        """Dense block of predictions, one row per user (all items)."""
        R = self._require_fit()
        n_items = R.shape[1]
        u = np.repeat(np.asarray(users, dtype=np.int64), n_items)
        i = np.tile(np.arange(n_items, dtype=np.int64), len(users))
        return self.predict(u, i).reshape(len(users), n_items)

    def recommend(self, users: Any, n: int, *, batch: int = 256) -> TopN:
        """The ``n`` unrated items with the highest predicted rating, per user."""
        R = self._require_fit()
        users, _ = check_pairs(users, np.zeros(np.size(users), np.int64), R.shape)
        n = check_n(n, R.shape[1])
        return rank_blocks(R, users, n, self.predict_users, batch)


class Recommender(Model, abc.ABC):
    """Lists the best unrated items per user."""

    @abc.abstractmethod
    def fit(self, train: Any) -> Recommender:
        """Learn from ``train`` (CSR users x items); returns ``self``."""

    @abc.abstractmethod
    def recommend(self, users: Any, n: int) -> TopN:
        """Top-``n`` items per user, excluding items the user rated in ``train``."""


def rank_blocks(R, users: np.ndarray, n: int, score_block, batch: int) -> TopN:
    """Top-``n`` per user of ``score_block(users) -> dense scores``, rated items and
    non-finite scores left out, in user batches of ``batch``."""
    from recsys_fast.kernels.predict import _top_n

    items = np.full((users.size, n), -1, dtype=np.int64)
    scores = np.full((users.size, n), np.nan)
    for b0 in range(0, users.size, batch):
        ub = users[b0 : b0 + batch]
        P = np.array(score_block(ub), dtype=np.float64)
        P[~np.isfinite(P)] = -np.inf
        rated = R[ub]
        P[np.repeat(np.arange(ub.size), np.diff(rated.indptr)), rated.indices] = -np.inf
        it, sc = _top_n(P, n, np)
        items[b0 : b0 + batch], scores[b0 : b0 + batch] = it, sc
    return TopN(items, scores)


def drop_rated(R, users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> TopN:
    """A peer's top-n lists with every item the user rated in ``R`` (and any negative id)
    removed, the remaining items moved to the front in their order, the rest padded."""
    items = np.asarray(items, dtype=np.int64).copy()
    scores = np.asarray(scores, dtype=np.float64).copy()
    rated = R[users]
    keep = items >= 0
    for row in range(users.size):
        seen = rated.indices[rated.indptr[row] : rated.indptr[row + 1]]
        keep[row] &= ~np.isin(items[row], seen)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept entries first, order preserved
    items = np.take_along_axis(items, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    keep = np.take_along_axis(keep, order, axis=1)
    items[~keep] = -1
    scores[~keep] = np.nan
    return TopN(items, scores)
