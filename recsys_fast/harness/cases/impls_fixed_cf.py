"""Implementations of the fixed neighbourhood CF (true cosine, top-k neighbours): top-10 recommendations.

``cf_fixed_recommend``: ``kernels.FixedCF("item", k=50)`` is fitted in setup (its neighbour
search is ``cosine_topk``, timed by that kernel's cases); the timed call is
``recommend(users, 10)`` for a fixed sample of up to 2,000 users: dense prediction blocks, the
rated-item mask and the top-n selection. On the GPU it runs from host user ids to host results,
so both transfers are timed.

The course has no such model (it predicts every pair from all neighbours), so there is no naive
case. This ranks by *predicted rating*; implicit's item-kNN ranking (a sum of similarities
weighted by the ratings, no means, no division) is another function, timed like for like in
``knn_recommend`` (:mod:`.impls_knn_rank`). The check recomputes the first 32 sampled users in float64, from the rating matrix and the
model's own neighbour lists (those are checked by the ``cosine_topk`` cases): item means over
rated entries, ``mu_i + sum_j s_ij (r_uj - mu_j) / sum_j |s_ij|`` over the neighbours j of i the
user rated, rated items masked, ranked by score then item; scores must agree to 1e-4 and items
wherever the scores are not tied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict
from recsys_fast.harness.cases.checks import compare_ranked_lists, sample_rows

KERNEL = "cf_fixed_recommend"
K_NEIGHBOURS = 50
N_RECOMMEND = 10
N_USERS = 2_000
N_CHECK = 32
TOL = 1e-4  # float32 model, scores on the rating scale


@dataclass
class RecommendState:
    ctx: Any
    scale: str
    R: Any  # users x items float32 CSR (host)
    users: np.ndarray  # the users recommended for in the timed call
    model: Any = None  # the fitted model (fitted in setup, not timed)


class RecommendImpl(Adapter):
    """Top-N recommendations (rated items excluded) for a fixed sample of users."""

    kernel = KERNEL
    description = (f"fixed item-based CF (k={K_NEIGHBOURS}): top-{N_RECOMMEND} "
                   f"recommendations for {N_USERS:,} users")

    def setup(self, ctx, scale: str) -> RecommendState:
        R = casedata.train_csr(ctx, scale, np.float32)
        st = RecommendState(ctx, scale, R, sample_rows(R.shape[0], N_USERS))
        st.model = self.fit(st)
        return st

    def fit(self, st: RecommendState):
        raise NotImplementedError

    def examples(self, st: RecommendState) -> float:
        return len(st.users)


class OptimisedRecommend(RecommendImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "FixedCF.recommend (dense blocks + top-n)"

    def fit(self, st: RecommendState):
        from recsys_fast.kernels import FixedCF

        model = FixedCF("item", k=K_NEIGHBOURS, backend=self.backend).fit(st.R)
        casedata.sync(self.backend)
        return model

    def run(self, st: RecommendState):
        items, scores = st.model.recommend(st.users, N_RECOMMEND)
        if self.backend == "cpu":
            return items, scores
        return casedata.to_backend(items, "cpu"), casedata.to_backend(scores, "cpu")

    def check(self, ctx, st: RecommendState, result) -> Verdict:
        items, scores = result
        W = casedata.to_backend(st.model.neighbours_, "cpu")
        users = st.users[:N_CHECK]
        want_items, want_scores = reference_recommend(st.R, W, users, N_RECOMMEND)
        return compare_ranked_lists(
            _ranked(np.asarray(items)[:N_CHECK], np.asarray(scores)[:N_CHECK]),
            _ranked(want_items, want_scores), tol=TOL,
            against=f"{len(users)} sampled users vs float64 from the model's neighbours")

    def memory_estimate(self, spec) -> int:
        neighbours = spec.n_items * K_NEIGHBOURS * 12 * 2  # W and |W|
        return spec.n_ratings * 60 + neighbours + (256 << 20)  # R copies, fit, 64 MiB blocks


class ModelRecommend(RecommendImpl):
    """A peer top-N recommender from :mod:`recsys_fast.models`, fitted in setup (not timed),
    ``recommend`` timed. The peers compute other functions than ours (their docstrings say
    which), so they are compared on quality (``recsys-fast eval``); the check verifies what
    every top-N list must satisfy: no item the user rated, scores best first, padding last."""

    same_function = False

    def model(self):
        raise NotImplementedError

    def fit(self, st: RecommendState):
        return self.model().fit(st.R)

    def run(self, st: RecommendState):
        return st.model.recommend(st.users, N_RECOMMEND)

    def check(self, ctx, st: RecommendState, result) -> Verdict:
        items, scores = np.asarray(result[0]), np.asarray(result[1], dtype=np.float64)
        against = (f"different function ({st.model.note}): compared on quality; checked: "
                   f"no rated item, sorted, {len(st.users)} users")
        if items.shape != (len(st.users), N_RECOMMEND):
            return Verdict(f"mismatch: result shape {items.shape}", against)
        for r, u in enumerate(st.users):
            kept = items[r] >= 0
            rated = st.R.indices[st.R.indptr[u]:st.R.indptr[u + 1]]
            if np.isin(items[r][kept], rated).any():
                return Verdict(f"mismatch: user {u} is recommended an item they rated", against)
            s = scores[r][kept]
            if (np.diff(s) > 1e-6 * np.maximum(1.0, np.abs(s[:-1]))).any() or (
                    kept.any() and not kept[: kept.sum()].all()):
                return Verdict(f"mismatch: user {u}'s list is not best first", against)
        return Verdict("n/a", against)

    def extra(self, st: RecommendState, result) -> dict:
        return {"model": st.model.name}


class LensKitRecommend(ModelRecommend):
    name = "lenskit"
    requires = ("lenskit",)
    install_note = ("lenskit 2025.8 requires pandas~=2.0 and torch~=2.4: install "
                    "'recsys-fast[lenskit]' in an environment of its own")
    note = f"LensKit ItemKNNScorer(max_nbrs={K_NEIGHBOURS}) top-N pipeline, one user per call"

    def model(self):
        from recsys_fast.models import LensKitItemKNN

        return LensKitItemKNN(K_NEIGHBOURS)


def reference_recommend(R, W, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Item-based fixed-CF top-n for ``users`` in float64 from R (users x items) and the
    neighbour matrix W (row i: item i's neighbours j with s_ij); pads with (-1, NaN)."""
    R = R.astype(np.float64).tocsr()
    W = W.astype(np.float64).tocsr()
    n_items = R.shape[1]
    counts = np.bincount(R.indices, minlength=n_items)
    sums = np.bincount(R.indices, weights=R.data, minlength=n_items)
    mu = np.where(counts > 0, sums / np.maximum(counts, 1), R.data.mean())
    Ru = R[users].toarray()
    rated = Ru != 0
    centred = np.where(rated, Ru - mu[None, :], 0.0)
    num = (W @ centred.T).T
    den = (abs(W) @ rated.T.astype(np.float64)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.where(den > 0, mu[None, :] + num / den, mu[None, :])
    pred[rated] = -np.inf
    items = np.full((len(users), n), -1, dtype=np.int64)
    scores = np.full((len(users), n), np.nan)
    for r in range(len(users)):
        order = np.lexsort((np.arange(n_items), -pred[r]))[:n]  # score desc, then item asc
        order = order[np.isfinite(pred[r, order])]
        items[r, : len(order)] = order
        scores[r, : len(order)] = pred[r, order]
    return items, scores


def _ranked(items, scores) -> dict:
    return {r: [(float(s), int(i)) for i, s in zip(items[r], scores[r], strict=True) if i >= 0]
            for r in range(items.shape[0])}


FAMILIES = (RecommendImpl,)
