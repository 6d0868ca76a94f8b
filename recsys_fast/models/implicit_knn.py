"""implicit's item-item neighbourhood recommenders (``implicit.nearest_neighbours``).

Both are fit on the user x item rating matrix (ratings used as weights, as given) and keep the
``K`` most similar items per item. Score of item i for user u: ``sum_j r_uj * s(j, i)`` over the
items j the user rated, among whose K neighbours i is. ``CosineRecommender``: s = cosine of
the item columns; ``ItemItemRecommender``: s = the raw dot product of the columns (no
normalisation, so popular items dominate); ``TFIDFRecommender`` and ``BM25Recommender``: the
same on weighted columns. No means, no normalisation of the score by the weights: the function
of :class:`~recsys_fast.kernels.ItemKNN` (``ItemKNNModel``), not of ``FixedCF``.

``recommend`` uses ``filter_already_liked_items=True``; implicit fills a short list with
filtered items (score 0), which are removed here and padded with -1 / NaN.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from recsys_fast.models.base import Recommender, TopN, drop_rated

_KINDS = {"cosine": "CosineRecommender", "itemitem": "ItemItemRecommender",
          "tfidf": "TFIDFRecommender", "bm25": "BM25Recommender"}
_SIMILARITY = {"cosine": "cosine", "itemitem": "dot product", "tfidf": "TF-IDF-weighted cosine",
               "bm25": "BM25-weighted dot product (K1=1.2, B=0.75)"}


class ImplicitItemKNN(Recommender):
    """implicit ``CosineRecommender``, ``ItemItemRecommender``, ``TFIDFRecommender`` or
    ``BM25Recommender`` with ``K`` neighbours."""

    requires = ("implicit",)

    def __init__(self, kind: str = "cosine", k: int = 50):
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {tuple(_KINDS)}, got {kind!r}")
        self.kind, self.k = kind, int(k)
        self.name = f"implicit-{kind}-k{self.k}"
        sim = _SIMILARITY[kind]
        self.note = (f"implicit {_KINDS[kind]}: item-item {sim} on ratings, K={self.k}; "
                     "score = sum of the user's ratings x similarity")
        self.model_ = None

    def fit(self, train: Any) -> ImplicitItemKNN:
        from implicit import nearest_neighbours

        R = self._set_train(train)
        self.model_ = getattr(nearest_neighbours, _KINDS[self.kind])(K=self.k)
        with warnings.catch_warnings():
            # implicit transposes our CSR to COO inside fit, then warns about its own copy
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model_.fit(R.astype(np.float64), show_progress=False)  # itemitem needs double
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        R, u, n = self._recommend_args(users, n)
        ids, scores = self.model_.recommend(u, R[u], N=n, filter_already_liked_items=True)
        ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
        if ids.shape[1] < n:  # implicit may return fewer columns than asked
            pad = n - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores.astype(np.float64), ((0, 0), (0, pad)),
                            constant_values=np.nan)
        return drop_rated(R, u, ids, scores)
