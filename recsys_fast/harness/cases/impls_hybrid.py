"""Implementations of the course's hybrids: top-10 lists of the switching and the mixed hybrid.

``switching_hybrid_recommend`` and ``mixed_hybrid_recommend``: setup fits, untimed, the parts
both implementations read: ``FixedCF("item", k=50)`` on the scale's ratings (float64), and
the content similarity of the scale's item descriptions (``tfidf_topk(docs, k=21)``: each
item's 20 nearest items by TF-IDF cosine). The timed call is one recommend call for a fixed
sample of up to 200 users, top-10, rated items never listed (a switching hybrid with
``min_ratings=5``).

naive = :mod:`recsys_fast.naive.hybrid`: the composition written the course's way (dense
neighbour matrices, dense matrix-vector products per user, a Python loop over every item
choosing the scorer, a sort). optimised = ``SwitchingHybrid`` / ``MixedHybrid``
``.recommend_users`` (user blocks: the CF block from ``FixedCF.predict_users``, the content
block from two sparse products, a vectorised top-n). Both list equal scores by ascending item,
so the check wants the same items, scorers and scores (1e-9 relative) as the naive lists. The
naive case runs up to 1m (at 10m its dense products take about a minute a call); above, the
check runs the naive composition on the sparse matrices for the first 16 sampled users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict
from recsys_fast.harness.cases.checks import sample_rows

K_NEIGHBOURS = 50
K_CONTENT = 21  # slots including the item itself: 20 content neighbours
MIN_RATINGS = 5
N_RECOMMEND = 10
N_USERS = 200
N_CHECK = 16
RTOL = 1e-9


@dataclass
class HybridState:
    ctx: Any
    scale: str
    R: Any  # users x items float64 CSR
    cf: Any  # the fitted FixedCF
    content: Any  # items x items float64 CSR
    users: np.ndarray
    model: Any = None  # optimised: the fitted hybrid; naive: its Inputs


def fitted_parts(ctx, scale: str) -> tuple[Any, Any, Any]:
    """``(R, cf, content)`` of the scale, built once per scale (not timed)."""

    def build():
        from recsys_fast.kernels import FixedCF, tfidf_topk

        R = casedata.train_csr(ctx, scale, np.float64)
        cf = FixedCF("item", k=K_NEIGHBOURS, dtype=np.float64).fit(R)
        docs = casedata.documents(ctx, scale)
        content = tfidf_topk(docs, k=K_CONTENT).similarity_matrix(np.arange(1, R.shape[1] + 1))
        return R, cf, content.astype(np.float64)

    return ctx.memo((scale, "hybrid_parts", K_NEIGHBOURS, K_CONTENT), build)


class _HybridImpl(Adapter):
    """Top-N lists of one hybrid for a fixed sample of users (see the module docstring)."""

    def setup(self, ctx, scale: str) -> HybridState:
        R, cf, content = fitted_parts(ctx, scale)
        st = HybridState(ctx, scale, R, cf, content, sample_rows(R.shape[0], N_USERS))
        st.model = self.fit(st)
        return st

    def fit(self, st: HybridState) -> Any:
        raise NotImplementedError

    def naive(self, inputs, users):
        """The naive composition's lists for ``users`` from ``inputs``."""
        raise NotImplementedError

    def check(self, ctx, st: HybridState, result) -> Verdict:
        got = result
        want = ctx.naive_reference(self.kernel, st.scale)
        against = "naive"
        if want is None:
            from recsys_fast.naive import hybrid as naive

            rows = slice(0, N_CHECK)
            got = tuple(x[rows] for x in result)
            want = self.naive(naive.prepare(st.R, st.cf.neighbours_, st.content),
                              st.users[rows])
            against = f"naive composition on the sparse matrices, first {N_CHECK} users"
        return compare_lists(got, want, against)

    def examples(self, st: HybridState) -> float:
        return float(st.users.size)

    def memory_estimate(self, spec) -> int:
        fit = spec.n_ratings * 60 + spec.n_items * (K_NEIGHBOURS + K_CONTENT) * 36
        docs = spec.n_items * 60 * 3 * 100  # the vectoriser's n-grams, as tfidf_topk's case
        return fit + docs + 4 * 8 * spec.n_items * min(N_USERS, spec.n_users) + (256 << 20)


class _Naive(_HybridImpl):
    name = role = "naive"
    scales = ("tiny", "100k", "1m")  # 10m: four dense 10,677^2 products per user, ~70 s a call

    def fit(self, st: HybridState):
        from recsys_fast.naive import hybrid as naive

        return naive.prepare(st.R, st.cf.neighbours_.toarray(), st.content.toarray())

    def run(self, st: HybridState):
        return self.naive(st.model, st.users)

    def memory_estimate(self, spec) -> int:
        return super().memory_estimate(spec) + 2 * 8 * spec.n_items**2  # dense W and C


class _Optimised(_HybridImpl):
    name = role = "optimised"

    def run(self, st: HybridState):
        return st.model.recommend_users(st.users, N_RECOMMEND)


class SwitchingImpl(_HybridImpl):
    kernel = "switching_hybrid_recommend"
    description = (f"switching hybrid (CF k={K_NEIGHBOURS} / TF-IDF content / popularity, "
                   f"min_ratings={MIN_RATINGS}): top-{N_RECOMMEND} for {N_USERS} users")

    def naive(self, inputs, users):
        from recsys_fast.naive import hybrid as naive

        return naive.switching_recommend(inputs, users, N_RECOMMEND, min_ratings=MIN_RATINGS)


class NaiveSwitching(_Naive, SwitchingImpl):
    note = "naive.hybrid.switching_recommend: dense rows, per-item loop, sort"


class OptimisedSwitching(_Optimised, SwitchingImpl):
    note = "SwitchingHybrid.recommend_users (user blocks, vectorised top-n)"

    def fit(self, st: HybridState):
        from recsys_fast.kernels import SwitchingHybrid

        return SwitchingHybrid(st.cf, content=st.content, min_ratings=MIN_RATINGS).fit(st.R)


class MixedImpl(_HybridImpl):
    kernel = "mixed_hybrid_recommend"
    description = (f"mixed hybrid (CF k={K_NEIGHBOURS} and TF-IDF content lists merged): "
                   f"top-{N_RECOMMEND} for {N_USERS} users")

    def naive(self, inputs, users):
        from recsys_fast.naive import hybrid as naive

        return naive.mixed_recommend(inputs, users, N_RECOMMEND)


class NaiveMixed(_Naive, MixedImpl):
    note = "naive.hybrid.mixed_recommend: dense rows, per-item loop, two sorts, merge"


class OptimisedMixed(_Optimised, MixedImpl):
    note = "MixedHybrid.recommend_users (user blocks, vectorised top-n, per-user merge)"

    def fit(self, st: HybridState):
        from recsys_fast.kernels import MixedHybrid

        return MixedHybrid(st.cf, content=st.content).fit(st.R)


def compare_lists(got, want, against: str) -> Verdict:
    """``equal`` when items and scorers are the same and scores agree to :data:`RTOL`."""
    (g_items, g_scores, g_src), (w_items, w_scores, w_src) = (
        tuple(np.asarray(x) for x in got), tuple(np.asarray(x) for x in want))
    if g_items.shape != w_items.shape:
        return Verdict(f"mismatch: lists of shape {g_items.shape}, reference {w_items.shape}",
                       against)
    for what, a, b in (("item", g_items, w_items), ("scorer", g_src, w_src)):
        bad = np.argwhere(a != b)
        if bad.size:
            r, p = (int(x) for x in bad[0])
            return Verdict(f"mismatch: {len(bad)} {what}s differ; first: row {r} position {p}: "
                           f"{a[r, p]} vs {b[r, p]}", against)
    tol = RTOL * max(1.0, float(np.nanmax(np.abs(w_scores), initial=0.0)))
    if not np.allclose(g_scores, w_scores, rtol=0, atol=tol, equal_nan=True):
        worst = float(np.nanmax(np.abs(g_scores - w_scores)))
        return Verdict(f"mismatch: scores differ by up to {worst:.3g}", against)
    return Verdict("equal", against)


FAMILIES = (SwitchingImpl, MixedImpl)
