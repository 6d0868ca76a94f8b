"""Implementations of the TF-IDF content recommender (the course's content engine).

One document per item of the scale's synthetic catalogue (1,682 at 100k ... 59,047 at 25m).
naive = ``naive.content.ContentRecommender(docs).fit()``: TF-IDF, the dense ``linear_kernel``
and an ``iterrows`` + ``argsort()[:-100:-1]`` pass keeping 98 neighbours per item; optimised =
``kernels.tfidf_topk(docs, k=99)`` (same vectoriser settings, sparse blocked top-k). Both are
compared as ``{id: [(score, other_id), ...]}`` lists, tie-aware to 1e-5 (float32), against the
naive results, or, where the naive n x n matrix does not fit, on 200 sampled items against
exact float64 TF-IDF similarities ranked the course's way. Peer: sparse_dot_topn
``sp_matmul_topn(T, T.T, top_n=99)`` on the same TF-IDF matrix (the standard tool for TF-IDF
matching), vectorised inside the timed call as ours and the course's are, its rows mapped to the
course's lists (item itself first, dropped) by the same code as ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict
from recsys_fast.harness.cases.casedata import F64
from recsys_fast.harness.cases.checks import compare_ranked_lists, sample_rows

KERNEL = "tfidf_topk"
K = 99  # the course's argsort()[:-100:-1]
N_SAMPLE = 200
TOL = 1e-5


@dataclass
class DocsState:
    scale: str
    docs: Any  # DataFrame: id, description


class TextNeighboursImpl(Adapter):
    """Each item's 98 most similar items by TF-IDF cosine, as the course's results dict."""

    kernel = KERNEL
    description = f"TF-IDF (1-3 grams) top-{K} similar items (course content engine)"

    def setup(self, ctx, scale: str) -> DocsState:
        return DocsState(scale, casedata.documents(ctx, scale))

    def results(self, result) -> dict:
        """The result as the course's ``{id: [(score, other_id), ...]}`` dict."""
        return result.results()

    def check(self, ctx, st: DocsState, result) -> Verdict:
        got = self.results(result)
        ref = ctx.naive_reference(KERNEL, st.scale)
        if ref is not None:
            return compare_ranked_lists(got, ref, tol=TOL, against="naive")
        rows = sample_rows(len(st.docs), N_SAMPLE)
        ref = exact_results(st.docs, rows)
        missing = [key for key in ref if key not in got]
        if missing:
            return Verdict(f"mismatch: no list for items {missing[:5]}", "sampled exact")
        return compare_ranked_lists({key: got[key] for key in ref}, ref, tol=TOL,
                                    against=f"{len(rows)} sampled items vs exact float64")

    def extra(self, st: DocsState, result) -> dict:
        strategy = getattr(result, "strategy", "")
        return {"strategy": strategy} if strategy else {}

    def examples(self, st: DocsState) -> float:
        return len(st.docs)

    def memory_estimate(self, spec) -> int:
        n = spec.n_items
        return n * K * 120 + n * 60 * 3 * 100 + (256 << 20)


class NaiveTextNeighbours(TextNeighboursImpl):
    name = role = "naive"
    note = "TfidfVectorizer + linear_kernel + iterrows/argsort"

    def run(self, st: DocsState):
        from recsys_fast.naive.content import ContentRecommender

        return ContentRecommender(st.docs).fit().results

    def results(self, result) -> dict:
        return result

    def memory_estimate(self, spec) -> int:
        n = spec.n_items
        return F64 * n * n + n * K * 100 + n * 60 * 3 * 100  # S, result lists, TF-IDF matrix


class OptimisedTextNeighbours(TextNeighboursImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "kernels.tfidf_topk (sparse top-k; vectoriser on the CPU)"

    def run(self, st: DocsState):
        from recsys_fast.kernels import tfidf_topk

        out = tfidf_topk(st.docs, k=K, backend=self.backend)
        casedata.sync(self.backend)
        return out


class SparseDotTopnTextNeighbours(TextNeighboursImpl):
    name = "sparse_dot_topn"
    requires = ("sparse_dot_topn",)
    note = "TfidfVectorizer + sp_matmul_topn(T, T.T, top_n=99)"

    def run(self, st: DocsState):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sparse_dot_topn import sp_matmul_topn

        from recsys_fast.kernels.tfidf import neighbours_from_topk
        from recsys_fast.naive.content import TFIDF_PARAMS

        T = TfidfVectorizer(**TFIDF_PARAMS).fit_transform(st.docs["description"])
        T = T.astype(np.float32).tocsr()
        k = min(K, T.shape[0])
        S = sp_matmul_topn(T, T.T.tocsr(), top_n=k, n_threads=casedata.threads())
        return neighbours_from_topk(st.docs["id"].to_numpy(), S, k)


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


FAMILIES = (TextNeighboursImpl,)
