"""Cases of the IMDB weighted-rating chart (the course's simple recommender).

naive: ``naive.simple.weighted_rating_chart`` (row-wise ``DataFrame.apply``); optimised:
``kernels.popularity.weighted_rating_chart`` (vectorised; on the GPU the scores are computed on
the device from the host frame and come back, so both transfers are timed). Input: one row per item with
``vote_count``/``vote_average`` (synthetic items carry them; for real ML-100K they are computed
from the ratings). Check: same rows in the same order (ids may differ only between equal
scores) and scores equal to 1e-12.
"""

from __future__ import annotations

import numpy as np

from recsys_fast.harness import casedata
from recsys_fast.harness.registry import Case, Registry, Verdict

KERNEL = "weighted_rating"


def _mem(spec) -> int:
    return spec.n_items * 400  # a few copies of a small frame (titles dominate)


def _setup(ctx, scale, backend="cpu"):
    return {"md": casedata.vote_metadata(ctx, scale), "scale": scale, "backend": backend}


def _run_naive(state):
    from recsys_fast.naive.simple import weighted_rating_chart

    return weighted_rating_chart(state["md"])


def _run_optimised(state):
    from recsys_fast.kernels.popularity import weighted_rating_chart

    return weighted_rating_chart(state["md"], backend=state["backend"])


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


def _check(ctx, state, result) -> Verdict:
    ref = ctx.naive_reference(KERNEL, state["scale"])
    if ref is None:
        return Verdict("n/a", "naive reference did not run")
    return compare_charts(result, ref, "naive")


def register(reg: Registry) -> None:
    reg.add_kernel(KERNEL, "IMDB weighted-rating chart (course simple recommender)")
    common = dict(kernel=KERNEL, memory_estimate=_mem, examples=lambda st: len(st["md"]))
    reg.add(Case(impl="naive", backend="cpu", setup=_setup, run=_run_naive,
                 note="pandas apply(axis=1)", **common))
    for be in ("cpu", "gpu"):
        reg.add(Case(impl="optimised", backend=be,
                     setup=lambda ctx, sc, be=be: _setup(ctx, sc, be), run=_run_optimised,
                     check=_check, note="vectorised numpy" if be == "cpu" else "vectorised cupy",
                     **common))
