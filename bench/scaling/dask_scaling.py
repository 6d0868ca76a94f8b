"""Strong and weak scaling of item-item ``cosine_topk`` (k=50) on dask LocalClusters.

Run from the repository root::

    python bench/scaling/dask_scaling.py [--scale 10m] [--workers 1,2] [--rounds 3]
    python bench/scaling/dask_scaling.py --parquet 100m      # one out-of-core run, see below

**Strong scaling**: the items x users matrix of the synthetic ``--scale`` set, fixed; the
single-process kernel (this process's threads) and ``cosine_topk(backend="dask")`` on a
LocalCluster of each ``--workers`` count (worker processes, one thread each).
Efficiency ``E(w) = T(1) / (w T(w))``. The single-process kernel is also timed with each
``--workers`` count as its thread count: its efficiency is what this machine's cores give
threads that share one copy of the data, the ceiling for the workers. Every configuration
runs one strategy: ``--strategy``, or with ``auto`` (the default) the one the single-process
call picks for the data set (``auto`` weighs measured costs and the thread count, and two
strategies round the same sums differently, so mixing them would fail the equality check).
**Weak scaling**: the data grow with the workers:
``w`` workers get the ``--scale`` spec with ``w`` times its users and ratings (the same items,
as the ``100m`` preset is ML-25M with 4x the users), so the pair work grows ``w``-fold too;
``E(w) = T(1) / T(w)``. Every cluster is open for the whole study and the configurations of a
data set are timed interleaved (round r runs each once), medians of ``--rounds`` after one
warm-up call; each dask result is checked equal (indices and values) to the single-process one.

For the cost model (``bench/README.md``, "Dask") each dask configuration also records the parts
of one call (``timing`` of the result): the transport (shared memory or scatter), the
client-side preparation, the tasks (scatter, compute, gather), the merge, and the compute time
of every task (dask's task stream).

``--parquet 100m``: the out-of-core path once: the Parquet folder (written with
``recsys_fast.data.parquet`` if absent, under ``$RECSYS_FAST_DATA/synthetic-parquet``) read by
partition into the user x item CSR on a LocalCluster of the largest ``--workers`` count, one
``cosine_topk(backend="dask")`` call, the workers' peak resident memory, and a check of 300
sampled rows against exact float64 similarities.

Writes ``results/<machine_id>/studies/dask_scaling_<UTC>.json`` (or ``dask_parquet_...``) and,
for the scaling study, a PNG of time and efficiency vs workers next to it
(``python bench/scaling/plot.py FILE`` redraws it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

K = 50


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _equal(a, b) -> bool:
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


def _close_values(a, b, atol: float = 1e-6) -> bool:
    """Each row keeps as many neighbours with the same similarities within ``atol`` (indices
    may differ among near-ties): what ``dense`` gives with another BLAS thread count."""
    if a.shape != b.shape or not np.array_equal(a.indptr, b.indptr):
        return False
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    va = a.data[np.lexsort((a.data, rows))]
    vb = b.data[np.lexsort((b.data, rows))]
    return bool(np.allclose(va, vb, rtol=0, atol=atol))


def _item_user(spec):
    from recsys_fast.data.synthetic import generate
    from recsys_fast.kernels import build_user_item_csr

    inter = generate(spec)
    return build_user_item_csr(inter.user_idx, inter.item_idx, inter.values).T.tocsr()


def _interleaved(calls: dict, rounds: int) -> dict:
    """``{name: (last result, median s, all s)}``; one warm-up each, then round-robin."""
    last = {name: fn() for name, fn in calls.items()}
    times: dict = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {n: (last[n], statistics.median(times[n]), times[n]) for n in calls}


def _parts(client, X, k: int, strategy: str) -> dict:
    """One call split up: the client-side preparation (normalisation; with the shared-memory
    transport also the relabelled arrays and their write), the tasks (scatter, compute,
    gather) with each task's compute time from dask's task stream, and the merge."""
    from distributed import get_task_stream

    from recsys_fast.kernels.distributed import cosine_topk_dask

    with get_task_stream(client=client) as ts:
        t0 = time.perf_counter()
        out = cosine_topk_dask(X, k, client=client, strategy=strategy)
        wall = time.perf_counter() - t0
    per_worker: dict = {}
    for task in ts.data:
        if not str(task.get("key", "")).startswith(("pair_topk_task", "row_topk_task")):
            continue
        busy = sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
        per_worker.setdefault(task["worker"], []).append(busy)
    compute = [sum(v) for v in per_worker.values()]
    return {"wall_s": wall, **out.timing,
            "x_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
            "tasks": list(out.tasks), "task_compute_s": sorted(t for v in per_worker.values()
                                                                    for t in v),
            "worker_compute_s": compute}


def _study(spec_name: str, workers: list[int], rounds: int, k: int,
           strategy: str = "auto") -> dict:
    from distributed import Client, LocalCluster

    from recsys_fast.data.synthetic import spec_for
    from recsys_fast.kernels import cosine_topk_result, warmup
    from recsys_fast.kernels.distributed import cosine_topk_dask
    from recsys_fast.memory import available_bytes

    warmup()
    base = spec_for(spec_name)
    clusters, clients = {}, {}
    try:
        for w in workers:
            clusters[w] = LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                       memory_limit=available_bytes() // (2 * w),
                                       dashboard_address=":0")
            clients[w] = Client(clusters[w], set_as_default=False)
            clients[w].run(warmup)
        data = {"strong": {}, "weak": {}}
        sets = [("strong", 1, base)] + [
            ("weak", w, dataclasses.replace(base, n_users=base.n_users * w,
                                            n_ratings=base.n_ratings * w,
                                            name=f"{spec_name} x{w} users"))
            for w in workers if w > 1]
        for kind, w_data, spec in sets:
            X = _item_user(spec)
            print(f"{spec.name}: {X.shape[0]} items x {X.shape[1]} users, nnz {X.nnz:,}",
                  flush=True)
            # one strategy for every configuration: ``auto`` decides by measured cost (and
            # the thread count), and two strategies round the same sums differently
            used = (strategy if strategy != "auto"
                    else cosine_topk_result(X, k, strategy="auto").strategy)
            calls = {"single": lambda X=X, s=used: cosine_topk_result(X, k, strategy=s)}
            ws = workers if kind == "strong" else [w_data]
            if kind == "strong":  # the machine's own ceiling: threads sharing one process
                for w in ws:
                    calls[f"threads{w}"] = lambda X=X, w=w, s=used: cosine_topk_result(
                        X, k, n_threads=w, strategy=s)
            for w in ws:
                calls[f"dask{w}"] = lambda X=X, c=clients[w], s=used: cosine_topk_dask(
                    X, k, client=c, strategy=s)
            res = _interleaved(calls, rounds)
            ref = res["single"][0].matrix
            row = {"data": spec.name, "shape": list(X.shape), "nnz": int(X.nnz),
                   "pair_work": float(np.sum(np.diff(X.tocsc().indptr).astype(float) ** 2)),
                   "single_process_s": res["single"][1], "single_rounds_s": res["single"][2],
                   "strategy": used, "dask": []}
            if kind == "strong":
                t1 = res["threads1"][1]
                row["threads"] = [{"threads": w, "time_s": res[f"threads{w}"][1],
                                   "rounds_s": res[f"threads{w}"][2],
                                   "efficiency": t1 / (w * res[f"threads{w}"][1]),
                                   "equal": _equal(res[f"threads{w}"][0].matrix, ref),
                                   # dense: OpenBLAS rounds by its thread count (last bits)
                                   "values_within_1e-6": _close_values(
                                       res[f"threads{w}"][0].matrix, ref)}
                                  for w in ws]
                print("  single process by threads: " + ", ".join(
                    f"{r['threads']}: {r['time_s']:.3f} s" for r in row["threads"]), flush=True)
            for w in ws:
                got, t, all_t = res[f"dask{w}"]
                parts = _parts(clients[w], X, k, used)
                row["dask"].append({"workers": w, "threads_per_worker": 1, "time_s": t,
                                    "rounds_s": all_t, "equal": _equal(got.matrix, ref),
                                    "tasks": list(got.tasks), "parts": parts})
                print(f"  dask {w} worker(s): {t:.3f} s, single process "
                      f"{res['single'][1]:.3f} s, equal={_equal(got.matrix, ref)}", flush=True)
            data[kind][spec.name] = row
            del X, res, ref
        for w, c in clients.items():
            info = c.scheduler_info()["workers"]
            data.setdefault("clusters", {})[str(w)] = {
                "memory_limit": [v["memory_limit"] for v in info.values()],
                "peak_rss_bytes": list(c.run(_peak_rss).values())}
    finally:
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
    strong = data["strong"][base.name]
    t1 = next(r["time_s"] for r in strong["dask"] if r["workers"] == 1)
    for r in strong["dask"]:
        r["efficiency"] = t1 / (r["workers"] * r["time_s"])
    for row in data["weak"].values():
        for r in row["dask"]:
            r["efficiency"] = t1 / r["time_s"]
    return data


def _parquet_run(scale: str, workers: int, k: int) -> dict:
    from distributed import Client, LocalCluster

    from recsys_fast.harness.cases.checks import compare_topk, exact_cosine_rows, sample_rows
    from recsys_fast.harness.cases.impls_dask import parquet_folder
    from recsys_fast.harness.cases.impls_similarity import TOPK_TOL
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.kernels import cosine_topk_result, warmup
    from recsys_fast.kernels.distributed import user_item_csr_from_parquet
    from recsys_fast.memory import available_bytes

    warmup()
    t0 = time.perf_counter()
    folder = parquet_folder(CaseContext(), scale)
    t_synth = time.perf_counter() - t0
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=available_bytes() // (2 * workers),
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.run(warmup)
        t0 = time.perf_counter()
        R, _, _ = user_item_csr_from_parquet(folder, client=client)
        t_csr = time.perf_counter() - t0
        X = R.T.tocsr()
        del R
        t0 = time.perf_counter()
        with client.as_current():
            res = cosine_topk_result(X, k, backend="dask")
            out = res.matrix
        t_topk = time.perf_counter() - t0
        peaks = client.run(_peak_rss)
        limits = [v["memory_limit"] for v in client.scheduler_info()["workers"].values()]
    rows = sample_rows(X.shape[0], 300)
    verdict = compare_topk(out, exact_cosine_rows(X, rows), rows, k, include_self=False,
                           tol=TOPK_TOL, against=f"{len(rows)} sampled rows vs exact float64")
    return {"scale": scale, "folder_ready_s": t_synth, "csr_from_parquet_s": t_csr,
            "cosine_topk_s": t_topk, "shape": list(X.shape), "nnz": int(X.nnz),
            "strategy": res.strategy, "tasks": list(res.tasks), "workers": workers,
            "worker_memory_limit": limits, "worker_peak_rss_bytes": sorted(peaks.values()),
            "client_peak_rss_bytes": _peak_rss(), "verdict": verdict.text,
            "checked_against": verdict.against, "_X": X, "_matrix": out}


def _outofcore_run(scale: str, workers: list[int], k: int, in_memory: bool) -> dict:
    """``cosine_topk_parquet`` on a fresh LocalCluster of each worker count (one call each,
    fewest workers first), 300 sampled rows checked against exact float64 computed out of
    core; with ``in_memory`` also the in-memory dask path and this process's kernel (1 and 2
    threads) on the same ratings, their results compared with the out-of-core one."""
    from distributed import Client, LocalCluster

    from recsys_fast.harness.cases.checks import compare_topk, sample_rows
    from recsys_fast.harness.cases.impls_dask import parquet_folder
    from recsys_fast.harness.cases.impls_similarity import TOPK_TOL
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.kernels import warmup
    from recsys_fast.kernels.outofcore import cosine_rows_parquet, cosine_topk_parquet
    from recsys_fast.memory import available_bytes

    warmup()
    t0 = time.perf_counter()
    folder = parquet_folder(CaseContext(), scale)
    out: dict = {"scale": scale, "k": k, "folder_ready_s": time.perf_counter() - t0,
                 "folder": folder.name, "runs": []}
    result = None
    for w in workers:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          memory_limit=available_bytes() // w,
                          dashboard_address=":0") as cluster, \
                Client(cluster, set_as_default=False) as client:
            client.run(warmup)
            t0 = time.perf_counter()
            res = cosine_topk_parquet(folder, k, client=client, progress=print)
            seconds = time.perf_counter() - t0
            peaks = client.run(_peak_rss)
            limits = [v["memory_limit"] for v in client.scheduler_info()["workers"].values()]
            run = {"workers": w, "seconds": seconds, "stats": res.stats,
                   "ns_per_pair_madd": seconds * 1e9 / res.stats["pair_madds"],
                   "worker_memory_limit": limits,
                   "worker_peak_rss_bytes": sorted(peaks.values()),
                   "client_peak_rss_bytes": _peak_rss()}
            print(f"{w} worker(s): {seconds:.1f} s, {res.stats['pair_madds']:.3g} pair "
                  f"multiply-adds, worker peaks {[round(b / 2**30, 2) for b in run['worker_peak_rss_bytes']]} GiB",
                  flush=True)
            if w == workers[-1]:
                rows = sample_rows(res.matrix.shape[0], 300)
                t0 = time.perf_counter()
                exact = cosine_rows_parquet(folder, rows, client=client)
                verdict = compare_topk(res.matrix, exact, rows, k, include_self=False,
                                       tol=TOPK_TOL, against=f"{len(rows)} sampled rows vs "
                                       "exact float64 (out of core)")
                out.update(verdict=verdict.text, checked_against=verdict.against,
                           check_s=time.perf_counter() - t0)
                print(f"check: {verdict.text} ({verdict.against})", flush=True)
                result = res
            out["runs"].append(run)
    if in_memory:
        out["in_memory"] = _in_memory_beside(scale, workers[-1], k, result, exact, rows)
    out["client_peak_rss_bytes"] = _peak_rss()
    return out


def _in_memory_beside(scale: str, workers: int, k: int, ooc, exact, rows) -> dict:
    """The in-memory dask path (``--parquet``'s run) and this process's kernel on the same
    ratings; each result checked against the same exact rows and compared with ``ooc``."""
    import numpy as np

    from recsys_fast.harness.cases.checks import compare_topk
    from recsys_fast.harness.cases.impls_similarity import TOPK_TOL
    from recsys_fast.kernels import cosine_topk_result

    mem = _parquet_run(scale, workers, k)
    X = mem.pop("_X")
    mem.pop("_matrix")  # checked in the run against its own exact rows
    out = {"dask_in_memory": mem}
    for threads in (1, 2):
        t0 = time.perf_counter()
        res = cosine_topk_result(X, k, n_threads=threads, strategy="sparse")
        out[f"in_process_{threads}_threads_s"] = time.perf_counter() - t0
        got = res.matrix
    same_counts = bool(np.array_equal(np.diff(got.indptr), np.diff(ooc.matrix.indptr)))
    gap = float(np.max(np.abs(np.sort(got.data.astype(np.float64))
                              - np.sort(ooc.matrix.data.astype(np.float64))))) \
        if same_counts else None
    v = compare_topk(got, exact, rows, k, include_self=False, tol=TOPK_TOL, against="exact")
    out.update(in_process_verdict=v.text, same_row_counts_as_out_of_core=same_counts,
               largest_sorted_value_gap_vs_out_of_core=gap)
    return out


def main() -> None:
    from recsys_fast.harness.run.machine import environment

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="10m")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parquet", default=None, metavar="SCALE",
                   help="the in-memory dask path once, its CSR built from the Parquet "
                        "folder of SCALE (e.g. 100m)")
    p.add_argument("--outofcore", default=None, metavar="SCALE",
                   help="cosine_topk_parquet on SCALE's Parquet folder, one LocalCluster per "
                        "--workers count (e.g. 100m, 1b)")
    p.add_argument("--in-memory", action="store_true",
                   help="with --outofcore: also the in-memory dask path and the in-process "
                        "kernel on the same ratings (up to 100m)")
    p.add_argument("-k", type=int, default=K)
    p.add_argument("--strategy", default="auto",
                   choices=("auto", "sparse", "dense", "spmm", "spgemm"),
                   help="cosine_topk strategy for every configuration (default auto: the "
                        "single-process call's choice, then fixed)")
    p.add_argument("--out", help="output file (default results/<machine_id>/studies/...)")
    a = p.parse_args()
    workers = sorted({int(w) for w in a.workers.split(",")})
    if a.parquet is None and a.outofcore is None and workers[0] != 1:
        p.error("--workers must include 1 (the efficiencies are relative to it)")
    env = environment(gemm_n=None)
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    if a.outofcore:
        res = {"study": "dask_outofcore",
               **_outofcore_run(a.outofcore, workers, a.k, a.in_memory)}
    elif a.parquet:
        res = {"study": "dask_parquet", **_parquet_run(a.parquet, workers[-1], a.k)}
        res.pop("_X"), res.pop("_matrix")
    else:
        res = {"study": "dask_scaling", "scale": a.scale, "k": a.k, "rounds": a.rounds,
               **_study(a.scale, workers, a.rounds, a.k, a.strategy)}
    res["date"] = started.isoformat()
    res["environment"] = env
    # other work on a shared machine shows here (1-, 5-, 15-minute load averages)
    res["loadavg_before"], res["loadavg_after"] = list(load_before), list(os.getloadavg())
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = Path(a.out) if a.out else (REPO / "results" / env["machine_id"] / "studies"
                                     / f"{res['study']}_{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")
    if not (a.parquet or a.outofcore):
        from plot import plot_scaling

        print(f"wrote {plot_scaling(out)}")


if __name__ == "__main__":
    main()
