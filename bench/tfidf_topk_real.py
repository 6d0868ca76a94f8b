"""TF-IDF top-k on real corpora and the synthetic catalogues: vectorising and top-k timed
apart, ours against sparse_dot_topn's ``sp_matmul_topn`` on the same matrix.

The vectoriser is the course's (``TfidfVectorizer(ngram_range=(1, 3), stop_words="english")``,
sklearn code shared by every implementation), timed once per corpus. The top-k calls take the
same float32 TF-IDF matrix T (rows L2-normalised by the vectoriser) and keep each row's 99
largest similarities, the row itself included (the course's ``argsort()[:-100:-1]``):

- ``ours``: ``cosine_topk_result(T, 99, include_self=True)`` with ``tfidf_topk``'s default
  strategy (``text_strategy("auto", ...)``: ``auto`` with the sparse strategy's rows form),
  what ``tfidf_topk`` runs; ``ours-blocked``: the sparse strategy's blocked form pinned, the
  form a generic ``cosine_topk`` call runs on most inputs;
- ``sp_matmul_topn``: ``sp_matmul_topn(T, T.T, top_n=99, n_threads=<threads>)``.

Calls run in interleaved rounds in one process, a busy pause before each; the report gives
medians, the ratio of medians and the 5-95 % range of the per-round ratios. Results agree
before timing: every row's kept similarities equal to 1e-5 (up to ties at the k-th value).
Writes ``results/<machine>/studies/tfidf_topk_real_<UTC time>.json``::

    python bench/tfidf_topk_real.py --corpora movie-keywords,retail-sample,synthetic-1m --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

K = 99
CORPORA = ("movie-keywords", "retail-sample", "synthetic-100k", "synthetic-1m", "synthetic-10m")
PAUSE_S = 0.2


def _busy(seconds: float) -> None:
    """A busy wait: a sleeping process lets this VM idle its vCPUs and slows the next call."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass


def corpus_texts(name: str, root: str | None):
    """The documents of a catalogued corpus, or of ``synthetic-<scale>``: the synthetic
    catalogue of that scale (one description per item, the harness's tfidf_topk corpus)."""
    if name.startswith("synthetic-"):
        from recsys_fast.data.synthetic import generate

        return generate(name.removeprefix("synthetic-"), seed=0).items["text"].tolist()
    from recsys_fast.data import catalogue

    spec = catalogue.get_spec(name)
    items = catalogue.load(name, os.path.join(root, spec.folder) if root else None)
    return items["text"].tolist()


def same_topk(A, B, tol: float = 1e-5) -> str | None:
    """None when each row of the two CSR results keeps the same similarities (to ``tol``);
    else the first differing row. Ties at the k-th value may keep other columns, so the sorted
    values are compared, and the columns only above the row's k-th value."""
    for i in range(A.shape[0]):
        a = np.sort(A.data[A.indptr[i]:A.indptr[i + 1]])[::-1]
        b = np.sort(B.data[B.indptr[i]:B.indptr[i + 1]])[::-1]
        a, b = a[a > 0], b[b > 0]
        if a.size != b.size or not np.allclose(a, b, atol=tol, rtol=0):
            return f"row {i}: {a.size} vs {b.size} kept, values differ"
    return None


def main(argv=None) -> int:
    import numba
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    from recsys_fast.harness.run.machine import blas_info, git_info, machine_id, machine_info
    from recsys_fast.kernels import cosine_topk_result, warmup
    from recsys_fast.kernels.tfidf import text_strategy
    from recsys_fast.kernels.topk_strategies import Sparse
    from recsys_fast.naive.content import TFIDF_PARAMS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--data-root", default=os.environ.get("RECSYS_FAST_SHARED"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        from sparse_dot_topn import sp_matmul_topn
    except ImportError:
        raise SystemExit("sparse_dot_topn is not installed: pip install sparse-dot-topn") from None
    info = machine_info()
    threads = numba.get_num_threads()
    warmup()
    rows = []
    for name in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        texts = corpus_texts(name, args.data_root)
        vec_times = []
        for _ in range(3):
            _busy(PAUSE_S)
            t0 = time.perf_counter()
            T = TfidfVectorizer(**TFIDF_PARAMS).fit_transform(texts)
            vec_times.append(time.perf_counter() - t0)
        T = T.astype(np.float32).tocsr()
        TT = T.T.tocsr()
        k = min(K, T.shape[0])
        calls = {
            "ours": lambda T=T, k=k: cosine_topk_result(
                T, k, include_self=True, strategy=text_strategy("auto", None, "cpu")[0]),
            "ours-blocked": lambda T=T, k=k: cosine_topk_result(
                T, k, include_self=True, strategy=Sparse(form="blocked")),
            "sp_matmul_topn": lambda T=T, TT=TT, k=k: sp_matmul_topn(T, TT, top_n=k,
                                                                     n_threads=threads),
        }
        first = {n: f() for n, f in calls.items()}  # warm-up, and the results compared
        ref = sp.csr_matrix(first["sp_matmul_topn"])
        agree = {n: same_topk(r.matrix, ref) for n, r in first.items() if n != "sp_matmul_topn"}
        if any(agree.values()):
            raise SystemExit(f"{name}: results differ: {agree}")
        names = list(calls)
        times = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                _busy(PAUSE_S)
                t0 = time.perf_counter()
                calls[n]()
                times[n].append(time.perf_counter() - t0)
        med = {n: statistics.median(v) for n, v in times.items()}
        per_round = sorted(p / o for p, o in zip(times["sp_matmul_topn"], times["ours"],
                                                 strict=True))
        lo = per_round[int(0.05 * (len(per_round) - 1))]
        hi = per_round[int(round(0.95 * (len(per_round) - 1)))]
        row = {"corpus": name, "documents": T.shape[0], "features": T.shape[1],
               "nnz": int(T.nnz), "k": k, "threads": threads,
               "vectorise_s": statistics.median(vec_times), "median_s": med,
               "times_s": times, "strategy": first["ours"].strategy,
               "ours_vs_sp_matmul_topn": med["sp_matmul_topn"] / med["ours"],
               "per_round_ratio_5_95": [lo, hi]}
        rows.append(row)
        print(f"{name}: {T.shape[0]:,} docs x {T.shape[1]:,} features; vectorise "
              f"{row['vectorise_s']:.3f} s; top-k ours ({row['strategy']}) {med['ours']:.3f} s, "
              f"blocked form {med['ours-blocked']:.3f} s, sp_matmul_topn {med['sp_matmul_topn']:.3f} s: "
              f"{row['ours_vs_sp_matmul_topn']:.2f}x [{lo:.2f}, {hi:.2f}] ({info.get('cpu_model')}, "
              f"{threads} threads)", flush=True)
    record = {"study": "tfidf_topk_real", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()),
              "git": git_info(), "machine": info, "blas": blas_info(), "rounds": args.rounds,
              "rows": rows}
    out = args.out or (Path(__file__).resolve().parents[1] / "results" / machine_id(info)
                       / "studies"
                       / f"tfidf_topk_real_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
