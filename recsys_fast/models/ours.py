"""Our models: the course's CF (through the optimised kernel) and :class:`FixedCF`.

``course-user`` / ``course-item`` are the course's dense prediction, quirks included, computed by
:func:`recsys_fast.kernels.predict_course` (tested equal to ``naive.collaborative.predict``):
user: ``mean_u + sum_v d(u, v) (r_vi - mean_v) / sum_v |d(u, v)|`` over *all* users v, with
``d`` the cosine *distance* used as the weight and ``mean`` over all items (zeros included);
item: ``sum_j r_uj d(i, j) / sum_j |d(i, j)|``. The weight grows with dissimilarity, so these
are not neighbourhood models in the usual sense; Surprise's ``KNNBasic`` with k=all computes a
different function (true similarity over common items, neighbours restricted to the users who
rated the item, no zeros averaged in).

``fixed-*`` wrap :class:`recsys_fast.kernels.predict.FixedCF` (true cosine on the raw rating
vectors, the k most similar users/items, means over rated entries only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_fast.models.base import RatingPredictor, Recommender, TopN, check_pairs


class CourseCF(RatingPredictor):
    """The course's memory-based CF prediction matrix (see the module docstring)."""

    def __init__(self, kind: str = "user"):
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
        self.kind = kind
        self.name = f"course-{kind}"
        self.note = (
            f"course {kind}-based CF: cosine distance as the weight, over all "
            f"{kind}s{', user mean over all items (zeros included)' if kind == 'user' else ''}"
            "; dense prediction via predict_course"
        )
        self.pred_ = None

    def fit(self, train: Any) -> CourseCF:
        from recsys_fast.kernels.predict import predict_course

        R = self._set_train(train)
        self.pred_ = np.asarray(predict_course(R, self.kind, dtype=np.float64))
        return self

    def predict(self, users: Any, items: Any) -> np.ndarray:
        R = self._require_fit()
        u, i = check_pairs(users, items, R.shape)
        return self.pred_[u, i]

    def predict_users(self, users: np.ndarray) -> np.ndarray:
        self._require_fit()
        return self.pred_[np.asarray(users, dtype=np.int64)]


class FixedCFModel(RatingPredictor, Recommender):
    """:class:`~recsys_fast.kernels.predict.FixedCF`: true cosine top-k neighbours, centred on
    means over rated entries, baseline mean where no neighbour rated the item."""

    def __init__(self, kind: str = "user", k: int = 50):
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
        self.kind, self.k = kind, int(k)
        self.name = f"fixed-{kind}-k{self.k}"
        mean = "user" if kind == "user" else "item"
        self.note = (
            f"{kind}-based kNN: cosine on full rating vectors, {self.k} most similar {kind}s "
            f"(positive only), centred on {mean} means over rated entries"
        )
        self.model_ = None

    def fit(self, train: Any) -> FixedCFModel:
        from recsys_fast.kernels.predict import FixedCF

        R = self._set_train(train)
        self.model_ = FixedCF(self.kind, self.k).fit(R)
        return self

    def predict(self, users: Any, items: Any) -> np.ndarray:
        R = self._require_fit()
        u, i = check_pairs(users, items, R.shape)
        return np.asarray(self.model_.predict(u, i), dtype=np.float64)

    def predict_users(self, users: np.ndarray) -> np.ndarray:
        self._require_fit()
        return np.asarray(self.model_.predict_users(np.asarray(users, dtype=np.int64)))

    def recommend(self, users: Any, n: int) -> TopN:
        R, u, n = self._recommend_args(users, n)
        items, scores = self.model_.recommend(u, n)
        return TopN(np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float64))


class ItemKNNModel(Recommender):
    """:class:`~recsys_fast.kernels.ItemKNN`: implicit's item-kNN ranking (the user's ratings
    times the top-K item similarity rows, rated items left out)."""

    #: the item configurations :class:`TunedKNN` chooses from
    GRID = tuple({"k": k, "weighting": w} for w in ("cosine", "tfidf", "bm25", "none")
                 for k in (10, 20, 50, 100, 200, 400))

    def __init__(self, k: int = 50, weighting: str = "cosine"):
        self.set_params(k=k, weighting=weighting)
        self.model_ = None

    def set_params(self, *, k: int, weighting: str) -> ItemKNNModel:
        from recsys_fast.kernels.knn_rank import WEIGHTINGS

        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.k, self.weighting = int(k), weighting
        self.name = f"item-knn-{weighting}-k{self.k}"
        self.note = (f"ItemKNN: item-item {weighting} similarity, K={self.k}; score = sum of "
                     "the user's ratings x similarity (implicit's function)")
        return self

    def params(self) -> dict:
        return {"k": self.k, "weighting": self.weighting}

    def fit(self, train: Any) -> ItemKNNModel:
        from recsys_fast.kernels import ItemKNN

        R = self._set_train(train)
        self.model_ = ItemKNN(self.k, self.weighting).fit(R)
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        return _kernel_recommend(self, users, n)


def _kernel_recommend(model: Recommender, users: Any, n: int) -> TopN:
    """``model.model_.recommend`` (a kNN ranker kernel) behind the Recommender checks."""
    _, u, n = model._recommend_args(users, n)
    items, scores = model.model_.recommend(u, n)
    return TopN(np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float64))


class UserKNNModel(Recommender):
    """:class:`~recsys_fast.kernels.UserKNN`: the k most similar users' ratings, weighted by
    their cosine similarity, rated items left out."""

    def __init__(self, k: int = 50):
        self.k = int(k)
        self.name = f"user-knn-k{self.k}"
        self.note = (f"UserKNN: sum over the {self.k} most similar users (cosine of rating rows) "
                     "of similarity x rating")
        self.model_ = None

    def fit(self, train: Any) -> UserKNNModel:
        from recsys_fast.kernels import UserKNN

        R = self._set_train(train)
        self.model_ = UserKNN(self.k).fit(R)
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        return _kernel_recommend(self, users, n)


class TunedKNN(Recommender):
    """The kNN ranker the protocol tunes: item-kNN (K and weighting) or user-kNN (k), picked
    from :attr:`GRID` by nDCG@10 on a validation split carved out of train (never the test
    split): see :func:`recsys_fast.quality.evaluate.tune`."""

    tunable = True
    name = "knn-tuned"
    GRID = (tuple({"kind": "item", **cfg} for cfg in ItemKNNModel.GRID)
            + tuple({"kind": "user", "k": k} for k in (20, 50, 100, 200)))

    def __init__(self):
        self.set_params(**self.GRID[0])

    def set_params(self, *, kind: str, k: int, weighting: str | None = None) -> TunedKNN:
        if kind == "item":
            self.inner = ItemKNNModel(k, weighting or "cosine")
        elif kind == "user":
            self.inner = UserKNNModel(k)
        else:
            raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
        self.note = (f"item- or user-kNN, chosen on a validation split of train (chosen: "
                     f"{self.describe(self.params())})")
        return self

    def params(self) -> dict:
        if isinstance(self.inner, ItemKNNModel):
            return {"kind": "item", **self.inner.params()}
        return {"kind": "user", "k": self.inner.k}

    @staticmethod
    def describe(params: dict) -> str:
        """``item bm25, K=10`` / ``user, k=50``."""
        if params.get("kind", "item") == "user":
            return f"user, k={params['k']}"
        return f"item {params['weighting']}, K={params['k']}"

    def fit(self, train: Any) -> TunedKNN:
        self.inner.fit(train)
        self.train_ = self.inner.train_
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        self._require_fit()
        return self.inner.recommend(users, n)
