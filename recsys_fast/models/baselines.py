"""The baselines every ranker must beat: the most popular items, and a random list.

Both leave out the items a user rated in train. ``most-popular``: items by their number of
train ratings, ties by ascending item index (score: that count). ``random``: a seeded
uniformly random order of the unrated items per user (score: 1 / position).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_fast.models.base import Recommender, TopN


class MostPopular(Recommender):
    """Items with the most train ratings first, rated items left out."""

    name = "most-popular"
    note = "items by number of train ratings (ties: lower item index), rated items left out"

    def fit(self, train: Any) -> MostPopular:
        R = self._set_train(train)
        counts = np.bincount(R.indices, minlength=R.shape[1])
        self.order_ = np.lexsort((np.arange(R.shape[1]), -counts))  # count desc, item asc
        self.counts_ = counts
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        R, u, n = self._recommend_args(users, n)
        items, scores = TopN.empty(u.size, n)
        longest = int(np.diff(R.indptr)[u].max(initial=0))
        head = self.order_[: n + longest]  # n unrated items lie within the first n + |rated|
        for r, user in enumerate(u):
            rated = R.indices[R.indptr[user] : R.indptr[user + 1]]
            keep = head[~np.isin(head, rated)][:n]
            keep = keep[self.counts_[keep] > 0]
            items[r, : keep.size] = keep
            scores[r, : keep.size] = self.counts_[keep]
        return TopN(items, scores)


class RandomRanker(Recommender):
    """A seeded random order of each user's unrated items."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = f"random-seed{self.seed}"
        self.note = f"a uniformly random order of the unrated items (seed {self.seed})"

    def fit(self, train: Any) -> RandomRanker:
        self._set_train(train)
        return self

    def recommend(self, users: Any, n: int) -> TopN:
        R, u, n = self._recommend_args(users, n)
        rng = np.random.default_rng(self.seed)
        items, scores = TopN.empty(u.size, n)
        for r, user in enumerate(u):
            rated = R.indices[R.indptr[user] : R.indptr[user + 1]]
            draw = rng.permutation(R.shape[1])[: n + rated.size]
            keep = draw[~np.isin(draw, rated)][:n]
            items[r, : keep.size] = keep
            scores[r, : keep.size] = 1.0 / np.arange(1, keep.size + 1)
        return TopN(items, scores)
