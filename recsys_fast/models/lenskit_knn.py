"""LensKit's item-item kNN (``lenskit.knn.ItemKNNScorer``, LensKit 2025.x API) as a recommender.

What it computes (explicit feedback): item vectors centred on the item means, cosine between
them (adjusted cosine), ``save_nbrs`` unlimited; for user u and candidate item i, the
``max_nbrs`` items most similar to i *among those u rated* (chosen per prediction) with
similarity above ``min_sim``, and ``score = mu_i + sum s_ij (r_uj - mu_j) / sum |s_ij|``.
Items with fewer than ``min_nbrs`` (1) such neighbours get no score and are not recommended.
Closest of the peers to :class:`~recsys_fast.kernels.predict.FixedCF` item kind, which instead
uses uncentred cosine and the k most similar items overall: a different function, compared on
top-N quality only. Recommendations come from ``lenskit.recommend`` on a
``topn_pipeline(ItemKNNScorer(...))``, which leaves out the items the user rated in train.

LensKit pulls torch and pins ``pandas~=2.0``; it is the optional extra ``lenskit``, kept apart
from ``dev`` so the project's environment can stay on pandas 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_fast.models.base import Recommender, TopN


class LensKitItemKNN(Recommender):
    """LensKit ``ItemKNNScorer(max_nbrs=k)`` in a top-N pipeline (module docstring)."""

    requires = ("lenskit",)
    install_note = ("pip install 'recsys-fast[lenskit]'; lenskit 2025.8 requires pandas~=2.0 "
                    "and torch~=2.4, so it downgrades a pandas 3 environment")

    def __init__(self, k: int = 20):
        self.k = int(k)
        self.name = f"lenskit-itemknn-k{self.k}"
        self.note = (f"LensKit ItemKNNScorer: adjusted cosine (item-mean centred), {self.k} most "
                     "similar items the user rated, item-mean-centred weighted average")
        self.pipe_ = None

    def fit(self, train: Any) -> LensKitItemKNN:
        from lenskit.data import from_interactions_df
        from lenskit.knn import ItemKNNScorer
        from lenskit.pipeline import topn_pipeline

        R = self._set_train(train).tocoo()
        frame = pd.DataFrame({"user_id": R.row.astype(np.int64), "item_id": R.col.astype(np.int64),
                              "rating": R.data.astype(np.float64)})
        data = from_interactions_df(frame, user_col="user_id", item_col="item_id",
                                    rating_col="rating", users=np.arange(R.shape[0]),
                                    items=np.arange(R.shape[1]))
        self.pipe_ = topn_pipeline(ItemKNNScorer(max_nbrs=self.k, feedback="explicit"))
        self.pipe_.train(data)
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        from lenskit import recommend

        R, u, n = self._recommend_args(users, n)
        items, scores = TopN.empty(u.size, n)
        for row, user in enumerate(u.tolist()):
            recs = recommend(self.pipe_, user, n=n)
            ids = np.asarray(recs.ids(), dtype=np.int64)[:n]
            items[row, : ids.size] = ids
            scores[row, : ids.size] = np.asarray(recs.scores(), dtype=np.float64)[:n]
        return TopN(items, scores)
