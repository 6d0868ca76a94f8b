"""Naive reference: the course's content-based recommender (TF-IDF + cosine on descriptions).

The course code (groveco/content-engine), kept as it is: ``TfidfVectorizer`` on the
descriptions, the full ``linear_kernel`` (TF-IDF rows are L2-normalised, so this is cosine
similarity), then one ``iterrows`` pass that keeps ``argsort()[:-100:-1]`` (the 99 highest
scores, best first) and drops the first of them as "the item itself" (``similar_items[1:]``),
leaving 98 neighbours per item. ``argsort`` is numpy's default (not stable) sort, as in the
course; where another item ties with the item itself at the top, whichever comes first is
dropped.

Forced or deliberate changes from the course:

* ``min_df=0`` is rejected by current scikit-learn (it must be an int >= 1 or a float in
  [0, 1]); ``min_df=1`` keeps exactly the same vocabulary (every term occurs in >= 1 document),
  so nothing is pruned, as the course intended;
* the frame is re-indexed 0..n-1 first: the course used the ``iterrows`` label as a row position
  and ``ds['id'][i]`` with a position, which is only right for a RangeIndex;
* the course's Redis ``zadd`` / ``results`` dict keeps ``(score, id)`` pairs; ``recommend``
  returns ``(id, score)`` pairs and ``describe`` gives the course's printed text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import linear_kernel

from recsys_fast.memory import check_memory, dense_bytes

#: The one source of truth for the vectoriser settings (the optimised kernel reuses it).
TFIDF_PARAMS: dict = {
    "analyzer": "word",
    "ngram_range": (1, 3),
    "min_df": 1,  # course: 0, no longer accepted; 1 prunes nothing either
    "stop_words": "english",
}

#: ``argsort()[:-100:-1]`` keeps 99 entries; the first is dropped as the item itself.
KEEP = 99


def _scalar(x):
    """numpy scalar -> Python scalar, so results print and compare plainly."""
    return x.item() if isinstance(x, np.generic) else x


class ContentRecommender:
    """TF-IDF content similarity over item descriptions, exactly as the course computes it.

    Parameters
    ----------
    descriptions : DataFrame
        Columns ``id`` (unique) and ``description`` (text); the retail ``sample-data.csv``.

    Attributes
    ----------
    tfidf_matrix : scipy.sparse matrix, after :meth:`fit`
    cosine_similarities : ndarray (n, n), after :meth:`fit`
    results : dict, after :meth:`fit`
        ``{id: [(score, other_id), ...]}``, up to 98 entries per item, best first.
    """

    def __init__(self, descriptions: pd.DataFrame):
        if not isinstance(descriptions, pd.DataFrame):
            raise TypeError(
                f"descriptions must be a pandas DataFrame, got {type(descriptions).__name__}"
            )
        missing = [c for c in ("id", "description") if c not in descriptions.columns]
        if missing:
            raise ValueError(
                f"descriptions lack columns {missing} (has {list(descriptions.columns)})"
            )
        if len(descriptions) == 0:
            raise ValueError("descriptions is empty: nothing to recommend")
        dup = descriptions["id"].duplicated(keep=False)
        if dup.any():
            raise ValueError(
                f"descriptions has repeated ids {sorted(set(descriptions['id'][dup]))[:10]}"
            )
        bad = descriptions["description"].map(lambda d: not isinstance(d, str))
        if bad.any():
            rows = list(descriptions.index[bad][:10])
            raise ValueError(f"description is not text (e.g. NaN) at rows {rows}")
        self.ds = descriptions.reset_index(drop=True)
        self.tfidf_matrix = None
        self.cosine_similarities = None
        self.results: dict | None = None

    def fit(self) -> ContentRecommender:
        """Vectorise, compute all pairwise similarities, keep each item's 98 best neighbours.

        Raises
        ------
        MemoryBudgetError
            The dense n x n similarity matrix would not fit in the memory budget.
        """
        ds = self.ds
        n = len(ds)
        check_memory(f"dense {n} x {n} float64 TF-IDF similarity", dense_bytes((n, n)))
        tf = TfidfVectorizer(**TFIDF_PARAMS)
        tfidf_matrix = tf.fit_transform(ds["description"])
        cosine_similarities = linear_kernel(tfidf_matrix, tfidf_matrix)
        results = {}
        for idx, row in ds.iterrows():
            similar_indices = cosine_similarities[idx].argsort()[:-100:-1]  # KEEP = 99
            similar_items = [(cosine_similarities[idx][i], ds["id"][i]) for i in similar_indices]
            # First item is the item itself, so remove it.
            results[row["id"]] = similar_items[1:]
        self.tfidf_matrix = tfidf_matrix
        self.cosine_similarities = cosine_similarities
        self.results = results
        return self

    def _require_fit(self) -> dict:
        if self.results is None:
            raise RuntimeError("ContentRecommender: call fit() before recommend()")
        return self.results

    def item(self, item_id) -> str:
        """The item's name: its description up to the first ``' - '`` (the course's ``item``)."""
        match = self.ds.loc[self.ds["id"] == item_id, "description"].tolist()
        if not match:
            raise KeyError(f"item id {item_id!r} is not in the descriptions")
        return match[0].split(" - ")[0]

    def recommend(self, item_id, num: int) -> list[tuple[object, float]]:
        """The ``num`` items most similar to ``item_id``, best first.

        Returns
        -------
        list of (other_id, score)

        Raises
        ------
        KeyError
            ``item_id`` is unknown.
        ValueError
            ``num`` < 1, or more than the neighbours kept (98, fewer for a small catalogue).
        """
        results = self._require_fit()
        if item_id not in results:
            raise KeyError(f"item id {item_id!r} is not in the descriptions")
        recs = results[item_id]
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)):
            raise TypeError(f"num must be an integer, got {num!r}")
        if not 1 <= num <= len(recs):
            raise ValueError(
                f"num must be between 1 and {len(recs)} (the course keeps {KEEP - 1} "
                f"neighbours per item), got {num}"
            )
        return [(_scalar(other), float(score)) for score, other in recs[:num]]

    def describe(self, item_id, num: int) -> str:
        """The course's printed recommendation, as text (``print(rec.describe(11, 5))``)."""
        lines = [f"Recommending {num} products similar to {self.item(item_id)}...", "-------"]
        for other, score in self.recommend(item_id, num):
            lines.append(f"Recommended: {self.item(other)} (score:{score})")
        return "\n".join(lines)
