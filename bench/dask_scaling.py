"""Strong scaling of item-item ``cosine_topk`` (k=50) on a dask LocalCluster vs one process.

Run from the repository root (nothing else busy on the machine)::

    python bench/dask_scaling.py [--scales 1m,10m] [--workers 1,2] [--rounds 3]

For each synthetic scale: the single-process kernel (``strategy`` auto, this process's
threads) is timed, then ``cosine_topk(backend="dask")`` on a LocalCluster of 1, 2, ...
worker processes (one thread each), each result checked equal to the single-process one
(indices and values). Times are medians of ``--rounds`` after one warm-up call (the workers
load the numba kernels from the on-disk cache then). ``--strategies`` adds runs with a forced
strategy (``sparse``: the numba kernel, each pair computed once by tasks that return heaps for all
rows; ``sparse-rows``: row-range tasks over full rows, twice the multiply-adds; ``dense``:
the GEMM blocks, each formed by both row blocks it serves). The JSON goes to ``results/<machine_id>/studies/dask_scaling_<UTC>.json``
with ``recsys_fast.harness.machine.environment``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from recsys_fast.data.synthetic import generate
from recsys_fast.harness.machine import environment
from recsys_fast.kernels import build_user_item_csr, cosine_topk_result, warmup
from recsys_fast.kernels.distributed import cosine_topk_dask
from recsys_fast.memory import available_bytes

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, rounds: int):
    out = fn()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times), times


def _equal(a, b) -> bool:
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


def run(scales: list[str], workers: list[int], rounds: int, k: int,
        strategies: list[str]) -> dict:
    from distributed import Client, LocalCluster

    warmup()
    cases = []
    for scale in scales:
        inter = generate(scale)
        X = build_user_item_csr(inter.user_idx, inter.item_idx, inter.values).T.tocsr()
        del inter
        for strategy in strategies:
            kernel_strategy = strategy.removesuffix("-rows")
            pairs = False if strategy.endswith("-rows") else None
            ref, t_single, all_single = _median_time(
                lambda X=X, s=kernel_strategy: cosine_topk_result(X, k, strategy=s), rounds)
            case = {"scale": scale, "kernel": "cosine_topk item-item", "k": k,
                    "shape": list(X.shape), "nnz": int(X.nnz), "strategy": strategy,
                    "strategy_used": ref.strategy, "single_process_s": t_single,
                    "single_process_rounds_s": all_single, "dask": []}
            print(f"{scale} {strategy} ({ref.strategy}): single process {t_single:.3f} s",
                  flush=True)
            for w in workers:
                with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                  memory_limit=available_bytes() // w,
                                  dashboard_address=":0") as cluster, \
                        Client(cluster, set_as_default=False) as client:
                    got, t, all_t = _median_time(
                        lambda X=X, s=kernel_strategy, p=pairs, c=client: cosine_topk_dask(
                            X, k, strategy=s, pairs=p, client=c), rounds)
                    equal = _equal(got.matrix, ref.matrix)
                    info = client.scheduler_info()["workers"]
                    row = {"workers": w, "threads_per_worker": 1, "time_s": t,
                           "tasks": list(got.matrix.dask_tasks),
                           "rounds_s": all_t, "equal": equal,
                           "worker_memory_limit": [v["memory_limit"] for v in info.values()],
                           "vs_single_process": t_single / t}
                case["dask"].append(row)
                print(f"  dask {w} worker(s): {t:.3f} s (single/dask {t_single / t:.2f}x), "
                      f"equal={equal}", flush=True)
            base = case["dask"][0]["time_s"] * case["dask"][0]["workers"]
            for row in case["dask"]:
                row["efficiency_vs_1_worker"] = base / (row["time_s"] * row["workers"])
            cases.append(case)
    return {"study": "dask_scaling", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
            "rounds": rounds, "cases": cases}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="1m,10m")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--strategies", default="auto,sparse,sparse-rows")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-k", type=int, default=50)
    p.add_argument("--out", help="output file (default results/<machine_id>/studies/...)")
    a = p.parse_args()
    env = environment(gemm_n=None)
    load_before = os.getloadavg()
    res = run(a.scales.split(","), [int(w) for w in a.workers.split(",")], a.rounds, a.k,
              a.strategies.split(","))
    res["environment"] = env
    # other work on a shared machine shows here (1-, 5-, 15-minute load averages)
    res["loadavg_before"], res["loadavg_after"] = list(load_before), list(os.getloadavg())
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(a.out) if a.out else (REPO / "results" / env["machine_id"] / "studies"
                                     / f"dask_scaling_{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
