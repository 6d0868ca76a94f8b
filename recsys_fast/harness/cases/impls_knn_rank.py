"""Implementations of item-kNN top-N ranking, implicit's function: top-10 recommendations.

``knn_recommend``: each implementation fits its item-item neighbour matrix S in setup (cosine,
K=50, the item itself included; the neighbour search is timed by the ``cosine_topk`` cases),
then the timed call is ``recommend`` for a fixed sample of up to 2,000 users: per user, the sum
of its rated items' neighbour rows weighted by the ratings, rated items left out, the 10 best.
On the GPU it runs from host user ids to host results, so both transfers are timed.

ours: :class:`recsys_fast.kernels.ItemKNN` (``weighting="cosine"``); peer: implicit's
``CosineRecommender`` (the same function). The check recomputes the first 64 sampled users in
float64 from the rating matrix and *the implementation's own* S: S of ours and of implicit
differ only where the K-th neighbours tie (the ``cosine_topk`` cases check S itself against
the full similarity), and scores must agree to 1e-9 relative, items wherever scores do not tie.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict
from recsys_fast.harness.cases.checks import compare_ranked_lists, sample_rows

KERNEL = "knn_recommend"
K_NEIGHBOURS = 50
N_RECOMMEND = 10
N_USERS = 2_000
N_CHECK = 64
RTOL = 1e-9  # scores are float64 sums of the same float products, in another order at most


@dataclass
class KnnState:
    ctx: Any
    scale: str
    R: Any  # users x items float32 CSR (host)
    users: np.ndarray  # the users recommended for in the timed call
    model: Any = None
    similarity: Any = None  # the fitted S (host CSR, float64), for the check


class KnnRecommendImpl(Adapter):
    """Item-kNN top-N for a fixed sample of users (see the module docstring)."""

    kernel = KERNEL
    description = (f"item-kNN ranking (cosine, K={K_NEIGHBOURS}, implicit's function): "
                   f"top-{N_RECOMMEND} for {N_USERS:,} users")
    roof = "scatter"

    def setup(self, ctx, scale: str) -> KnnState:
        R = casedata.train_csr(ctx, scale, np.float32)
        st = KnnState(ctx, scale, R, sample_rows(R.shape[0], N_USERS))
        st.model, st.similarity = self.fit(st)
        return st

    def fit(self, st: KnnState) -> tuple[Any, Any]:
        """The fitted model and its S as a host float64 CSR."""
        raise NotImplementedError

    def check(self, ctx, st: KnnState, result) -> Verdict:
        items, scores = (np.asarray(x) for x in result)
        users = st.users[:N_CHECK]
        want_items, want_scores = reference_recommend(st.R, st.similarity, users, N_RECOMMEND)
        tol = RTOL * max(1.0, float(np.nanmax(np.abs(want_scores), initial=0.0)))
        return compare_ranked_lists(
            _ranked(items[:N_CHECK], scores[:N_CHECK]), _ranked(want_items, want_scores),
            tol=tol, against=f"{len(users)} sampled users vs float64 from the impl's own S")

    def examples(self, st: KnnState) -> float:
        return len(st.users)

    def flops(self, st: KnnState) -> float:
        """Multiply-adds of the scores: each user's ratings times their neighbour rows."""
        U = st.R[st.users]
        row_len = np.diff(st.similarity.indptr)
        return 2.0 * float(row_len[U.indices].sum())

    def memory_estimate(self, spec) -> int:
        return spec.n_ratings * 40 + spec.n_items * K_NEIGHBOURS * 24 + (128 << 20)


class OptimisedKnnRecommend(KnnRecommendImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "ItemKNN(50, 'cosine').recommend (numba per-user scoring; GPU: U @ S blocks)"

    def fit(self, st: KnnState):
        from recsys_fast.kernels import ItemKNN

        model = ItemKNN(K_NEIGHBOURS, "cosine", backend=self.backend).fit(st.R)
        casedata.sync(self.backend)
        S = casedata.to_backend(model.similarity_, "cpu").astype(np.float64).tocsr()
        return model, S

    def run(self, st: KnnState):
        items, scores = st.model.recommend(st.users, N_RECOMMEND)
        if self.backend == "cpu":
            return items, scores
        return casedata.to_backend(items, "cpu"), casedata.to_backend(scores, "cpu")


class ImplicitKnnRecommend(KnnRecommendImpl):
    name = "implicit"
    requires = ("implicit",)
    note = f"implicit CosineRecommender(K={K_NEIGHBOURS}).recommend(users, R[users], N=10)"

    def fit(self, st: KnnState):
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=K_NEIGHBOURS)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(st.R.astype(np.float64), show_progress=False)
        return model, model.similarity.tocsr().astype(np.float64)

    def run(self, st: KnnState):
        return st.model.recommend(st.users, st.R[st.users], N=N_RECOMMEND,
                                  filter_already_liked_items=True)


def reference_recommend(R, S, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Item-kNN top-n for ``users`` in float64 from R (users x items) and S (row j: item j's
    neighbours): ``R[u] @ S``, rated and unreached items left out, score descending then item
    ascending; pads with (-1, NaN)."""
    R = R.astype(np.float64).tocsr()
    P = (R[users] @ S.astype(np.float64)).toarray()
    reached = (abs(R[users]) @ abs(S)).toarray() > 0
    rated = R[users].toarray() != 0
    P[~reached | rated | (P == 0)] = -np.inf
    n_items = R.shape[1]
    items = np.full((len(users), n), -1, dtype=np.int64)
    scores = np.full((len(users), n), np.nan)
    for r in range(len(users)):
        order = np.lexsort((np.arange(n_items), -P[r]))[:n]
        order = order[np.isfinite(P[r, order])]
        items[r, : len(order)] = order
        scores[r, : len(order)] = P[r, order]
    return items, scores


def _ranked(items, scores) -> dict:
    """``{row: [(score, item), ...]}`` of the valid entries (implicit pads short lists with
    filtered items of score 0 or less: those are not recommendations and are dropped)."""
    out = {}
    for r in range(items.shape[0]):
        out[r] = [(float(s), int(i)) for i, s in zip(items[r], scores[r], strict=True)
                  if i >= 0 and np.isfinite(s) and s != 0]
    return out


FAMILIES = (KnnRecommendImpl,)
