"""Item-item cosine top-k on the GPU, strategy by strategy, to set ``cosine_topk``'s GPU rule.

``cosine_topk(backend="gpu")`` picks ``dense`` (TF32 tensor cores when the values allow:
``dense-tf32``) while a dense copy of X fits in half the free device memory, else ``spmm``. That
rule has not been measured yet; this study times each strategy at the same scale in one process
(host input to host output, device synchronised, one warm-up call, median of the rest) and
checks every result on sampled rows against exact float64 cosine, so the rule can be set from
numbers. Strategies: ``dense-tf32`` (``tf32=None``), ``dense`` (``tf32=False``, plain float32
GEMM), ``spmm``, ``spgemm``. Each has a time limit per call estimated from the previous scale; a strategy
that would run past the study's budget is recorded as skipped.

Usage::

    python bench/gpu/topk_strategies.py OUT.json [--scales 1m,10m,25m] [--rounds 2]
        [--budget 120] [--k 50]

Without a GPU it runs on the simulated device only when ``RECSYS_FAST_SIMULATE_GPU=1`` (CPU
timings, labelled so); otherwise it exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from recsys_fast import backend as _backend  # noqa: E402
from recsys_fast.harness.cases import casedata  # noqa: E402
from recsys_fast.harness.cases.checks import compare_topk, exact_cosine_rows, sample_rows  # noqa: E402
from recsys_fast.harness.cases.registry import check_scales, default_registry  # noqa: E402
from recsys_fast.harness.run import machine as _machine  # noqa: E402
from recsys_fast.harness.run.context import CaseContext  # noqa: E402
from recsys_fast.results_store import atomic_write_text  # noqa: E402

STRATEGIES = {  # name -> cosine_topk keyword arguments
    "dense-tf32": {"strategy": "dense", "tf32": None},
    "dense": {"strategy": "dense", "tf32": False},
    "spmm": {"strategy": "spmm"},
    "spgemm": {"strategy": "spgemm"},
}
TOL = 1e-4  # as the harness's cosine_topk check (float32 sums over thousands of terms)


def work(name: str, shape, nnz: int) -> float:
    """Relative work of a strategy: n^2 m multiply-adds for dense GEMM, nnz n for SpMM, the
    sum of squared column counts (about nnz^2 / m) for SpGEMM."""
    n, m = shape
    if name == "spgemm":
        return float(nnz) ** 2 / m
    return float(nnz) * n if name == "spmm" else float(n) * n * m


def time_strategy(X, k: int, kwargs: dict, gpu, rounds: int) -> tuple[list[float], object, str]:
    """Seconds per call (after one warm-up call), the last result on the host, the strategy."""
    from recsys_fast.kernels import cosine_topk_result

    times: list[float] = []
    out = None
    for i in range(rounds + 1):
        pool = gpu.memory_pool()
        if pool is not None:
            pool.free_all_blocks()
        gpu.sync()
        t0 = time.perf_counter()
        res = cosine_topk_result(X, k, backend=gpu, **kwargs)
        out = _backend.to_host(res.matrix)
        gpu.sync()
        if i:  # the first call is the warm-up (kernel compilation, cuBLAS handles)
            times.append(time.perf_counter() - t0)
        ran = res.strategy
        del res
    return times, out, ran


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="JSON file to write")
    p.add_argument("--scales", default="1m,10m,25m")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--budget", type=float, default=120.0, help="seconds for the whole study")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    args = p.parse_args(argv)
    if not _backend.gpu_available():
        print(f"no usable GPU: {_backend.gpu_unavailable_reason()}", file=sys.stderr)
        return 2
    gpu = _backend.get_backend("gpu")
    names = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown:
        print(f"unknown strategies {unknown}; valid: {', '.join(STRATEGIES)}", file=sys.stderr)
        return 2
    scales = check_scales(args.scales.split(","))
    ctx = CaseContext(default_registry())
    doc = {"study": "cosine_topk GPU strategies", "k": args.k, "rounds": args.rounds,
           **_machine.environment(gemm_n=1024), "runs": []}
    out_path = Path(args.out)
    start = time.perf_counter()
    last: dict[str, float] = {}  # strategy -> seconds per call at the previous scale

    def save() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_path, json.dumps(doc, indent=1) + "\n")

    for scale in scales:
        X = casedata.item_user_csr(ctx, scale, np.float32)
        rows = sample_rows(X.shape[0], 300)
        exact = exact_cosine_rows(X, rows)
        k = min(args.k, X.shape[0] - 1)
        prev = doc["runs"][-1] if doc["runs"] else None
        for name in names:
            run = {"scale": scale, "strategy": name, "shape": list(X.shape), "nnz": int(X.nnz)}
            left = args.budget - (time.perf_counter() - start)
            # dense GEMM work grows as n^2 m, SpMM as nnz n: skip what would overrun the budget
            growth = work(name, X.shape, X.nnz) / work(name, prev["shape"], prev["nnz"]) \
                if prev else 1.0
            guess = last.get(name, 0.0) * growth * (args.rounds + 1)
            if name in last and guess > left:
                run["skipped"] = f"estimated {guess:.0f} s > {left:.0f} s left of the budget"
            else:
                try:
                    times, res, ran = time_strategy(X, k, STRATEGIES[name], gpu, args.rounds)
                    verdict = compare_topk(res, exact, rows, k, include_self=False, tol=TOL,
                                           against=f"{len(rows)} sampled rows vs exact float64")
                    run.update(median_s=statistics.median(times), times_s=times,
                               ran=ran, verdict=verdict.text)
                    last[name] = statistics.median(times)
                except Exception as exc:  # record and go on: one strategy may not fit
                    run["error"] = f"{type(exc).__name__}: {exc}"[:500]
                    last[name] = float("inf")
            doc["runs"].append(run)
            save()
            shown = (f"{run['median_s']:.3f} s ({run['ran']}, {run['verdict']})"
                     if "median_s" in run else run.get("skipped") or run.get("error"))
            print(f"[{time.perf_counter() - start:6.1f}s] {scale:5s} {name:11s} {shown}",
                  flush=True)
        ctx.clear()
    save()
    print(f"written {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
