"""scikit-surprise's neighbourhood models as rating predictors.

What Surprise computes (``surprise.prediction_algorithms.knns``), for a user-based model
predicting (u, i) (item-based swaps the roles):

* ``sim(u, v)``: ``cosine`` over the items *both* rated (norms over those common items only),
  or ``msd`` (``1 / (mean squared difference over common items + 1)``, Surprise's default);
* neighbours: the ``k`` most similar users *among those who rated i* (chosen per prediction),
  of which only those with ``sim > 0`` count;
* ``KNNBasic``: ``sum sim * r_vi / sum sim``; fewer than ``min_k`` (1) such neighbours ->
  "impossible", and Surprise predicts the global mean;
* ``KNNWithMeans``: ``mu_u + sum sim (r_vi - mu_v) / sum sim`` (means over rated entries);
  no neighbour -> ``mu_u``.

So ``KNNWithMeans(cosine, k)`` is *not* :class:`~recsys_fast.kernels.predict.FixedCF` with the
same k: FixedCF's cosine uses whole rating vectors (norms over all rated items) and keeps the
k most similar users overall, then uses those of them who rated i. On a matrix where everyone
rated everything the two similarities coincide (``tests/test_models.py`` checks both facts);
otherwise they are compared on quality only. ``KNNBasic`` with k=all is not the course CF either
(the course weights by cosine *distance*, over all users, with means over zeros).

Predictions are Surprise's ``algo.predict(uid, iid, clip=False)`` (unclipped, like ours);
``fallbacks_`` counts the last call's "impossible" predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_fast.memory import check_memory, dense_bytes
from recsys_fast.models.base import RatingPredictor, check_pairs

ALGOS = {"basic": "KNNBasic", "means": "KNNWithMeans"}
SIMILARITIES = ("cosine", "msd")


class SurpriseKNN(RatingPredictor):
    """Surprise ``KNNBasic`` / ``KNNWithMeans`` (see the module docstring).

    Parameters
    ----------
    algo : {"basic", "means"}
    kind : {"user", "item"}
    k : int or None
        Neighbours per prediction; None = all (k = number of users, or items).
    similarity : {"cosine", "msd"}
    """

    requires = ("surprise",)
    install_note = "pip install 'recsys-fast[peers]'"

    def __init__(self, algo: str = "basic", kind: str = "user", k: int | None = 40,
                 similarity: str = "cosine"):
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {tuple(ALGOS)}, got {algo!r}")
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if k is not None and (isinstance(k, bool) or int(k) < 1):
            raise ValueError(f"k must be a positive integer or None (all), got {k!r}")
        self.algo, self.kind, self.similarity = algo, kind, similarity
        self.k = None if k is None else int(k)
        ktxt = "all" if k is None else str(self.k)
        among = (f"all {kind}s who rated the target" if k is None
                 else f"{ktxt} most similar {kind}s among those who rated the target")
        self.name = (f"surprise-{ALGOS[algo].lower()}-{kind}-k{ktxt}"
                     + ("" if similarity == "cosine" else f"-{similarity}"))
        self.note = (f"Surprise {ALGOS[algo]}: {similarity} over common "
                     f"{'items' if kind == 'user' else 'users'}, {among}"
                     + (", centred on means over rated entries" if algo == "means" else ""))
        self.algo_ = None
        self.fallbacks_ = 0

    def fit(self, train: Any) -> SurpriseKNN:
        import surprise

        R = self._set_train(train).tocoo()
        frame = pd.DataFrame({"user": R.row.astype(np.int64), "item": R.col.astype(np.int64),
                              "rating": R.data.astype(np.float64)})
        reader = surprise.Reader(rating_scale=(float(R.data.min()), float(R.data.max())))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        n = trainset.n_users if self.kind == "user" else trainset.n_items
        # Surprise fills dense n x n float64 arrays: similarity, products, counts, two norms
        check_memory(f"{self.name} similarity ({n:,} x {n:,}) and its work arrays",
                     5 * dense_bytes((n, n)))
        cls = getattr(surprise, ALGOS[self.algo])
        self.algo_ = cls(k=n if self.k is None else self.k, verbose=False,
                         sim_options={"name": self.similarity, "user_based": self.kind == "user"})
        self.algo_.fit(trainset)
        return self

    def predict(self, users: Any, items: Any) -> np.ndarray:
        R = self._require_fit()
        u, i = check_pairs(users, items, R.shape)
        out = np.empty(u.size, dtype=np.float64)
        impossible = 0
        predict = self.algo_.predict
        for n, (uu, ii) in enumerate(zip(u.tolist(), i.tolist(), strict=True)):
            p = predict(uu, ii, clip=False)
            out[n] = p.est
            impossible += bool(p.details.get("was_impossible"))
        self.fallbacks_ = impossible
        return out
