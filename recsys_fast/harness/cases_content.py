"""Cases of the TF-IDF content recommender (the course's content engine).

One document per item of the scale's synthetic catalogue (1,682 at 100k ... 59,047 at 25m).
naive = ``naive.content.ContentRecommender(docs).fit()``: TF-IDF, the dense ``linear_kernel``
and an ``iterrows`` + ``argsort()[:-100:-1]`` pass keeping 98 neighbours per item; optimised =
``kernels.tfidf_topk(docs, k=99)`` (same vectoriser settings, sparse blocked top-k). Both are
compared as ``{id: [(score, other_id), ...]}`` lists, tie-aware to 1e-5 (float32), against the
naive results, or, where the naive n x n matrix does not fit, on 200 sampled items against
exact float64 TF-IDF similarities ranked the course's way.
"""

from __future__ import annotations

import numpy as np

from recsys_fast.harness import casedata
from recsys_fast.harness.casedata import F64
from recsys_fast.harness.checks import compare_ranked_lists, sample_rows
from recsys_fast.harness.registry import Case, Registry, Verdict

KERNEL = "tfidf_topk"
K = 99  # the course's argsort()[:-100:-1]
N_SAMPLE = 200
TOL = 1e-5


def _setup(ctx, scale, backend="cpu"):
    return {"ctx": ctx, "scale": scale, "docs": casedata.documents(ctx, scale),
            "backend": backend}


def _run_naive(st):
    from recsys_fast.naive.content import ContentRecommender

    return ContentRecommender(st["docs"]).fit().results


def _run_optimised(st):
    from recsys_fast.kernels import tfidf_topk

    out = tfidf_topk(st["docs"], k=K, backend=st["backend"])
    casedata.sync(st["backend"])
    return out


def _extra(st, result) -> dict:
    strategy = getattr(result, "strategy", None)
    return {"strategy": strategy} if strategy else {}


def as_results(obj) -> dict:
    """The optimised result as the naive ``{id: [(score, other_id), ...]}`` dict."""
    if isinstance(obj, dict):
        return obj
    for name in ("results", "to_results", "as_results"):
        attr = getattr(obj, name, None)
        if attr is not None:
            return attr() if callable(attr) else attr
    from recsys_fast.kernels import tfidf_results  # helper that converts a top-k result

    return tfidf_results(obj)


def exact_results(docs, rows: np.ndarray) -> dict:
    """The naive recommender's lists for the items at ``rows``, from exact float64 products."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from recsys_fast.naive.content import TFIDF_PARAMS

    T = TfidfVectorizer(**TFIDF_PARAMS).fit_transform(docs["description"]).astype(np.float64)
    ids = docs["id"].to_numpy()
    sims = (T[rows] @ T.T).toarray()
    out = {}
    for r, row in zip(rows, sims, strict=True):
        best = row.argsort()[: -(K + 1) : -1]
        out[ids[r]] = [(row[j], ids[j]) for j in best][1:]
    return out


def _check(ctx, st, result) -> Verdict:
    got = as_results(result)
    ref = ctx.naive_reference(KERNEL, st["scale"])
    if ref is not None:
        return compare_ranked_lists(got, ref, tol=TOL, against="naive")
    rows = sample_rows(len(st["docs"]), N_SAMPLE)
    ref = exact_results(st["docs"], rows)
    missing = [key for key in ref if key not in got]
    if missing:
        return Verdict(f"mismatch: no list for items {missing[:5]}", "sampled exact")
    return compare_ranked_lists({key: got[key] for key in ref}, ref, tol=TOL,
                                against=f"{len(rows)} sampled items vs exact float64")


def _mem_naive(spec) -> int:
    n = spec.n_items
    return F64 * n * n + n * K * 100 + n * 60 * 3 * 100  # S, result lists, TF-IDF matrix


def _mem_optimised(spec) -> int:
    n = spec.n_items
    return n * K * 120 + n * 60 * 3 * 100 + (256 << 20)


def register(reg: Registry) -> None:
    reg.add_kernel(KERNEL, f"TF-IDF (1-3 grams) top-{K} similar items (course content engine)")
    examples = dict(examples=lambda st: len(st["docs"]))
    reg.add(Case(kernel=KERNEL, impl="naive", backend="cpu", setup=_setup, run=_run_naive,
                 memory_estimate=_mem_naive,
                 note="TfidfVectorizer + linear_kernel + iterrows/argsort", **examples))
    for be in ("cpu", "gpu"):
        reg.add(Case(kernel=KERNEL, impl="optimised", backend=be,
                     setup=lambda ctx, sc, be=be: _setup(ctx, sc, be), run=_run_optimised,
                     check=_check, extra=_extra, memory_estimate=_mem_optimised,
                     note="kernels.tfidf_topk (sparse top-k; vectoriser on the CPU)",
                     **examples))
