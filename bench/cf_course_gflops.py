"""Course-mode CF at ML-1M shape: how close the dense products get to this machine's GEMM peak,
and naive vs optimised end to end.

    python bench/cf_course_gflops.py --out results/<machine>/cf_course_gflops.json

1. GEMM peak: best of ``--repeats`` numpy ``@`` on ``--peak-size`` squares, float64 and float32.
2. The dense products ``predict_course(strategy="dense")`` runs (user: the SYRK Gram
   G = B^T B and B @ G, B = D^1/2 R; item: the item Gram inside ``cosine_distances`` and
   R @ S), each timed alone, as GFLOP/s and as a fraction of the float64 peak.
3. The numba kernels ``predict_course(strategy="numba")`` (the CPU default) runs instead: the
   sparse Gram R^T diag(w) R and the sparse x dense product R @ G, as useful GFLOP/s
   (2 x multiply-adds on non-zeros / s) and as "dense-equivalent" GFLOP/s (the flops the
   dense product of the same shape would need / s), the latter comparable with the peak.
4. End to end, float64, both kinds, ``--rounds`` rounds alternating naive and ours in one
   process (medians reported): the course (itertuples matrix, both ``pairwise_distances``,
   both ``predict``) vs ours (CSR build from the same rating arrays, ``predict_course`` user
   and item: the same two prediction matrices), with the largest relative difference of
   the predictions. numba is compiled (or loaded from its cache) before any timing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import scipy.sparse


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def load_ratings(scale: str):
    """(ratings frame with 1-based ids, user_idx, item_idx, values, shape)."""
    from recsys_fast.data.synthetic import generate

    data = generate(scale, seed=0)
    u, i, v = data.user_idx, data.item_idx, data.values.astype(np.float64)
    frame = pd.DataFrame({"user_id": u.astype(np.int64) + 1, "item_id": i.astype(np.int64) + 1,
                          "rating": v})
    return frame, u, i, v, data.shape


def dense_products(R, repeats: int, peak64: float) -> list[dict]:
    from recsys_fast.backend import CPU
    from recsys_fast.kernels.core import normalized

    n_u, n_i = R.shape
    sq = np.asarray(R.multiply(R).sum(axis=1)).ravel()
    d = np.where(sq > 0, 1 / np.sqrt(np.where(sq > 0, sq, 1)), 0)
    Bd = R.multiply(np.sqrt(d)[:, None]).tocsr().toarray()
    t_g, G = best_of(lambda: Bd.T @ Bd, repeats)
    t_p, _ = best_of(lambda: Bd @ G, repeats)
    Xn = normalized(R.T.tocsr(), CPU, np.float64)
    Xd = Xn.toarray()
    t_s, S = best_of(lambda: Xd @ Xd.T, repeats)
    Rd = R.toarray()
    t_r, _ = best_of(lambda: Rd @ S, repeats)
    rows = [
        ("user: G = B^T B (syrk)", n_i * n_i * n_u, t_g),
        ("user: B @ G", 2 * n_u * n_i * n_i, t_p),
        ("item: Xn @ Xn^T (syrk, in cosine_distances)", n_i * n_i * n_u, t_s),
        ("item: R @ S", 2 * n_u * n_i * n_i, t_r),
    ]
    return [
        {"product": name, "gflop": f / 1e9, "seconds": t, "gflops": f / t / 1e9,
         "fraction_of_peak": f / t / 1e9 / peak64}
        for name, f, t in rows
    ]


def sparse_products(R, repeats: int, peak64: float) -> list[dict]:
    from recsys_fast.kernels import cf_course

    n_u, n_i = R.shape
    R = R.astype(np.float64)
    R.sort_indices()
    RT, pos = cf_course._transpose(R)
    w = np.ones(n_u)
    t_g, G = best_of(lambda: cf_course._gram(R, RT, pos, w), repeats)
    t_p, _ = best_of(lambda: cf_course._spmm(R, G, row_scale=-w), repeats)
    deg = np.diff(R.indptr).astype(np.float64)
    gram_madds = float((deg * (deg + 1) / 2).sum())  # upper triangle only
    rows = [
        ("numba: G = R^T diag(w) R (sparse Gram, symmetric half)", 2 * gram_madds,
         n_i * n_i * n_u, t_g),
        ("numba: R @ G (sparse x dense, fused finish)", 2 * R.nnz * n_i, 2 * n_u * n_i * n_i,
         t_p),
    ]
    return [
        {"product": name, "useful_gflop": f / 1e9, "seconds": t, "useful_gflops": f / t / 1e9,
         "dense_equivalent_gflops": fd / t / 1e9,
         "dense_equivalent_fraction_of_peak": fd / t / 1e9 / peak64}
        for name, f, fd, t in rows
    ]


def end_to_end(frame, u, i, v, shape, rounds: int = 3) -> dict:
    """Alternate naive and ours ``rounds`` times; medians and every round's times."""
    from recsys_fast.kernels import _gram_numba

    _gram_numba.warmup()
    runs = [_end_to_end_once(frame, u, i, v, shape) for _ in range(rounds)]
    med = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
    med["speedup"] = med["naive_seconds"] / med["ours_seconds"]
    med["speedup_dense_strategy"] = med["naive_seconds"] / med["ours_dense_seconds"]
    med["rounds"] = rounds
    med["all_rounds"] = runs
    med["definition"] = (
        "naive: build_data_matrix (itertuples) + user_item_similarity (both "
        "pairwise_distances) + predict user + predict item; ours: build_user_item_csr from "
        "the same (user, item, rating) arrays + predict_course user + predict_course item "
        "(default strategy: numba on CPU); both float64, same two prediction matrices; "
        "ours_dense: the same with strategy='dense'. Medians over rounds, naive and ours "
        "alternating in one process."
    )
    return med


def _end_to_end_once(frame, u, i, v, shape) -> dict:
    from recsys_fast.kernels import build_user_item_csr, predict_course
    from recsys_fast.naive import collaborative as naive

    t0 = time.perf_counter()
    M = naive.build_data_matrix(frame, shape)
    t_build = time.perf_counter() - t0
    user_sim, item_sim = naive.user_item_similarity(M)
    t_sim = time.perf_counter() - t0 - t_build
    want_u = naive.predict(M, user_sim, type="user")
    want_i = naive.predict(M, item_sim, type="item")
    t_naive = time.perf_counter() - t0
    del M, user_sim, item_sim

    t0 = time.perf_counter()
    R = build_user_item_csr(u, i, v, shape, dtype=np.float64)
    t_csr = time.perf_counter() - t0
    got_u = predict_course(R, "user")
    t_user = time.perf_counter() - t0 - t_csr
    got_i = predict_course(R, "item")
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    R = build_user_item_csr(u, i, v, shape, dtype=np.float64)
    dense_u = predict_course(R, "user", strategy="dense")
    dense_i = predict_course(R, "item", strategy="dense")
    t_dense = time.perf_counter() - t0

    def rel(a, b):
        return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))

    return {
        "ours_dense_seconds": t_dense,
        "max_rel_diff_dense_user": rel(dense_u, want_u),
        "max_rel_diff_dense_item": rel(dense_i, want_i),
        "naive_seconds": t_naive,
        "naive_build_matrix_seconds": t_build,
        "naive_similarities_seconds": t_sim,
        "ours_seconds": t_ours,
        "ours_build_csr_seconds": t_csr,
        "ours_user_seconds": t_user,
        "ours_item_seconds": t_ours - t_csr - t_user,
        "max_rel_diff_user": rel(got_u, want_u),
        "max_rel_diff_item": rel(got_i, want_i),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="1m", help="synthetic scale (default 1m: ML-1M shape)")
    ap.add_argument("--peak-size", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="end-to-end rounds (medians)")
    ap.add_argument("--skip-naive", action="store_true", help="no end-to-end course run")
    ap.add_argument("--out", type=Path, help="write the JSON here (else print it)")
    args = ap.parse_args(argv)

    from recsys_fast.harness.run.machine import environment

    result = {"load_average": os.getloadavg(), "scale": args.scale,
              **environment(gemm_n=args.peak_size, gemm_rounds=args.repeats)}
    peak64 = result["gemm_peak"]["cpu_float64_gflops"]
    frame, u, i, v, shape = load_ratings(args.scale)
    R = scipy.sparse.csr_matrix((v, (u, i)), shape=shape)
    result["shape"] = {"users": shape[0], "items": shape[1], "ratings": int(R.nnz),
                       "density": R.nnz / (shape[0] * shape[1])}
    result["dense_products"] = dense_products(R, args.repeats, peak64)
    result["sparse_products"] = sparse_products(R, args.repeats, peak64)
    if not args.skip_naive:
        result["end_to_end"] = end_to_end(frame, u, i, v, shape, args.rounds)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
