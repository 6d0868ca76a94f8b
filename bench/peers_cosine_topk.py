"""Item-item cosine top-k on an ML-10M-shaped matrix: ours vs implicit, sparse_dot_topn, scipy.

Run from the repository root::

    python bench/peers_cosine_topk.py results/peers_cosine_topk.json [--rounds 3] [--threads 2]

All peers run in this one process with the same thread count (env vars are set before numpy
is imported). Semantics are matched: implicit's ``CosineRecommender(K=50).fit(X)`` keeps each
item's 50 most similar items *including itself*, so ours runs with ``include_self=True, k=50``
and sparse_dot_topn with ``top_n=50`` on L2-normalised rows (which also keeps the item itself).
scipy's ``X.T @ X`` is the untruncated sparse product, timed once, for scale. The JSON written
holds medians and every round, the peak RSS of our call, the agreement with implicit, the
machine, library versions and BLAS/thread settings.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _threads import pin_threads_from_argv  # noqa: E402  (before numpy / numba)

_threads_default = pin_threads_from_argv()

import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import scipy.sparse as sp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def standin_10m(seed: int = 0) -> sp.csr_matrix:
    """Quick power-law users x items matrix of ML-10M's shape (used with --standin)."""
    n_users, n_items, nnz = 69_878, 10_677, 10_000_054
    rng = np.random.default_rng(seed)
    w = np.arange(1, n_items + 1) ** -0.95
    rng.shuffle(w)
    w /= w.sum()
    act = rng.lognormal(0, 1.2, n_users)
    cnt = 20 + np.floor(act / act.sum() * (nnz - 20 * n_users)).astype(np.int64)
    cnt = np.minimum(cnt, int(0.45 * n_items))
    u = np.repeat(np.arange(n_users), cnt)
    i = rng.choice(n_items, size=u.size, p=w)
    vals = rng.integers(1, 6, u.size).astype(np.float32)
    X = sp.csr_matrix((vals, (u, i)), shape=(n_users, n_items))
    X.sum_duplicates()
    X.data = np.minimum(X.data, 5)  # duplicates summed: clip back to a rating
    return X


def synthetic_10m() -> sp.csr_matrix:
    from recsys_fast.data.synthetic import generate
    from recsys_fast.kernels import build_user_item_csr

    d = generate("10m")
    return build_user_item_csr(d.user_idx, d.item_idx, d.values, (len(d.user_ids), len(d.item_ids)))


class PeakRSS:
    """Sample this process's RSS in a thread; ``peak`` is the highest seen while active."""

    def __init__(self, interval: float = 0.005):
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def timed(fn, rounds: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU seconds per round (CPU time is the steadier figure on a shared
    machine: it counts every thread of ours and of the peers alike)."""
    times, cpu, out = [], [], None
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu, out


def agreement(ours: sp.csr_matrix, other: sp.csr_matrix, atol: float = 1e-4) -> dict:
    """Share of rows whose sorted kept similarity values agree (tie-aware), and of neighbours."""
    ours, other = ours.tocsr(), other.tocsr()
    same_vals = same_cols = 0
    n = ours.shape[0]
    for i in range(n):
        a = np.sort(ours.data[ours.indptr[i] : ours.indptr[i + 1]])
        b = np.sort(other.data[other.indptr[i] : other.indptr[i + 1]])
        same_vals += a.size == b.size and bool(np.allclose(a, b, atol=atol))
        ca = set(ours.indices[ours.indptr[i] : ours.indptr[i + 1]].tolist())
        cb = set(other.indices[other.indptr[i] : other.indptr[i + 1]].tolist())
        same_cols += len(ca & cb) / max(1, len(ca | cb))
    return {"rows_same_values": same_vals / n, "mean_jaccard_neighbours": same_cols / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="JSON file to write")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(_threads_default))
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument(
        "--standin",
        action="store_true",
        help="quick power-law matrix instead of recsys_fast.data.synthetic.generate('10m')",
    )
    ap.add_argument("--skip-scipy", action="store_true", help="skip the full X.T @ X product")
    args = ap.parse_args(argv)
    k, rounds, threads = args.k, args.rounds, args.threads
    load_at_start = os.getloadavg()[0]

    from recsys_fast.harness.run.machine import environment
    from recsys_fast.kernels import cosine_topk_result, warmup

    t0 = time.perf_counter()
    try:
        X = standin_10m() if args.standin else synthetic_10m()
        source = "standin" if args.standin else "recsys_fast.data.synthetic.generate('10m')"
    except ImportError:
        X, source = standin_10m(), "standin (synthetic generator not importable)"
    X = X.astype(np.float32).tocsr()
    print(
        f"data: {source}, {X.shape[0]} users x {X.shape[1]} items, nnz {X.nnz:,} "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    items = X.T.tocsr()  # rows = items: item-item similarity
    t0 = time.perf_counter()
    warmup()
    warm_s = time.perf_counter() - t0
    results: dict[str, dict] = {}

    def ours():
        return cosine_topk_result(items, k, include_self=True, n_threads=threads,
                                  strategy="sparse")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with PeakRSS() as mem:
        times, cpu, ours_res = timed(ours, rounds)
    ours_out = ours_res.matrix
    results["ours"] = {
        "call": f"cosine_topk(X.T.tocsr(), {k}, include_self=True, strategy='sparse')",
        "strategy": ours_res.strategy,
        "times_s": times,
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu),
        "peak_rss_bytes": mem.peak,
        "rss_before_bytes": mem.start,
        "extra_rss_bytes": mem.peak - mem.start,
        "process_maxrss_bytes": max(
            rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ),
        "warmup_s": warm_s,
    }
    print(
        f"ours      median {results['ours']['median_s']:.2f} s (cpu {statistics.median(cpu):.2f})  "
        f"peak RSS {mem.peak / 2**30:.2f} GiB (+{(mem.peak - mem.start) / 2**30:.2f})",
        flush=True,
    )

    try:
        from implicit.nearest_neighbours import CosineRecommender

        def implicit_fit():
            m = CosineRecommender(K=k, num_threads=threads)
            m.fit(X, show_progress=False)
            return m.similarity

        times, cpu, imp = timed(implicit_fit, rounds)
        results["implicit"] = {
            "call": f"CosineRecommender(K={k}, num_threads={threads}).fit(X)",
            "times_s": times,
            "median_s": statistics.median(times),
            "cpu_s": cpu,
            "median_cpu_s": statistics.median(cpu),
            "agreement_with_ours": agreement(ours_out, imp),
        }
        print(
            f"implicit  median {results['implicit']['median_s']:.2f} s (cpu {statistics.median(cpu):.2f})  "
            f"{results['implicit']['agreement_with_ours']}",
            flush=True,
        )
    except ImportError as exc:
        results["implicit"] = {"skipped": str(exc)}

    try:
        from sklearn.preprocessing import normalize
        from sparse_dot_topn import sp_matmul_topn

        A = normalize(items).astype(np.float32).tocsr()
        AT = A.T.tocsr()

        def sdtn():
            return sp_matmul_topn(A, AT, top_n=k, n_threads=threads)

        times, cpu, sd = timed(sdtn, rounds)
        results["sparse_dot_topn"] = {
            "call": f"sp_matmul_topn(A, A.T, top_n={k}, n_threads={threads}), A = normalize(X.T)",
            "times_s": times,
            "median_s": statistics.median(times),
            "cpu_s": cpu,
            "median_cpu_s": statistics.median(cpu),
            "agreement_with_ours": agreement(ours_out, sd),
        }
        print(
            f"sdtn      median {results['sparse_dot_topn']['median_s']:.2f} s (cpu {statistics.median(cpu):.2f})  "
            f"{results['sparse_dot_topn']['agreement_with_ours']}",
            flush=True,
        )
    except ImportError as exc:
        results["sparse_dot_topn"] = {"skipped": str(exc)}

    if not args.skip_scipy:
        XT = X.T.tocsr()
        times, cpu, full = timed(lambda: XT @ X, 1)
        results["scipy_XtX"] = {
            "call": "X.T @ X (untruncated, single-threaded scipy)",
            "times_s": times,
            "median_s": statistics.median(times),
            "cpu_s": cpu,
            "median_cpu_s": statistics.median(cpu),
            "nnz": int(full.nnz),
        }
        del full
        print(f"scipy X.T@X {times[0]:.2f} s", flush=True)

    base = results["ours"]["median_s"]
    speedups = {
        name: r["median_s"] / base
        for name, r in results.items()
        if "median_s" in r and name != "ours"
    }
    base_cpu = results["ours"]["median_cpu_s"]
    cpu_speedups = {
        name: r["median_cpu_s"] / base_cpu
        for name, r in results.items()
        if "median_cpu_s" in r and name != "ours"
    }
    report = {
        "benchmark": "item-item cosine top-k, ML-10M shape",
        "data": {"source": source, "shape": list(X.shape), "nnz": int(X.nnz)},
        "k": k,
        "rounds": rounds,
        "threads": threads,
        "load_avg_1m_at_start": load_at_start,
        **environment(gemm_n=None),
        "results": results,
        "speedup_of_ours_vs": speedups,
        "cpu_time_ratio_vs_ours": cpu_speedups,
        "targets": {
            "ours_peak_rss_below_2GiB": results["ours"]["peak_rss_bytes"] < 2 * 2**30,
            "ours_2x_faster_than_implicit": speedups.get("implicit", 0) >= 2,
            "ours_faster_than_sparse_dot_topn": speedups.get("sparse_dot_topn", 0) > 1,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: report[k] for k in ("speedup_of_ours_vs", "cpu_time_ratio_vs_ours", "targets")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
