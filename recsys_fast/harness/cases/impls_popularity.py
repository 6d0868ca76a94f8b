"""Implementations of the IMDB weighted-rating chart (the course's simple recommender).

naive: ``naive.simple.weighted_rating_chart`` (row-wise ``DataFrame.apply``); optimised:
``kernels.popularity.weighted_rating_chart`` (vectorised; on the GPU the scores are computed on
the device from the host frame and come back, so both transfers are timed). Input: one row per item with
``vote_count``/``vote_average`` (synthetic items carry them; for real ML-100K they are computed
from the ratings). Check: same rows in the same order (ids may differ only between equal
scores) and scores equal to 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict

if TYPE_CHECKING:
    import pandas as pd

KERNEL = "weighted_rating"


@dataclass
class ChartState:
    scale: str
    md: pd.DataFrame  # one row per item: vote_count, vote_average, title...


class WeightedRatingImpl(Adapter):
    """The chart of items with ``vote_count >= m`` ranked by the IMDB weighted rating."""

    kernel = KERNEL
    description = "IMDB weighted-rating chart (course simple recommender)"

    def setup(self, ctx, scale: str) -> ChartState:
        return ChartState(scale, casedata.vote_metadata(ctx, scale))

    def check(self, ctx, st: ChartState, result) -> Verdict:
        ref = ctx.naive_reference(KERNEL, st.scale)
        if ref is None:
            return Verdict("n/a", "naive reference did not run")
        return compare_charts(result, ref, "naive")

    def memory_estimate(self, spec) -> int:
        return spec.n_items * 400  # a few copies of a small frame (titles dominate)

    def examples(self, st: ChartState) -> float:
        return len(st.md)


class NaiveWeightedRating(WeightedRatingImpl):
    name = role = "naive"
    note = "pandas apply(axis=1)"

    def run(self, st: ChartState):
        from recsys_fast.naive.simple import weighted_rating_chart

        return weighted_rating_chart(st.md)


class OptimisedWeightedRating(WeightedRatingImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "vectorised numpy (cupy on the GPU)"

    def run(self, st: ChartState):
        from recsys_fast.kernels.popularity import weighted_rating_chart

        return weighted_rating_chart(st.md, backend=self.backend)


def compare_charts(got, ref, against: str) -> Verdict:
    if len(got) != len(ref):
        return Verdict(f"mismatch: {len(got)} rows vs {len(ref)} in the reference", against)
    s_got = got["score"].to_numpy(np.float64)
    s_ref = ref["score"].to_numpy(np.float64)
    if not np.allclose(s_got, s_ref, rtol=1e-12, atol=0):
        i = int(np.argmax(np.abs(s_got - s_ref)))
        return Verdict(f"mismatch: rank {i}: score {s_got[i]!r} vs {s_ref[i]!r}", against)
    if list(got.index) == list(ref.index):
        return Verdict("equal", against)
    if set(got.index) != set(ref.index):
        return Verdict("mismatch: different items qualify", against)
    for i, (a, b) in enumerate(zip(got.index, ref.index, strict=True)):
        if a != b and (np.abs(s_ref - s_ref[i]) <= 1e-12 * abs(s_ref[i])).sum() < 2:
            return Verdict(f"mismatch: rank {i}: item {a!r} vs {b!r} (untied score)", against)
    return Verdict("equal up to ties", against)


FAMILIES = (WeightedRatingImpl,)
