"""Run the harness's CPU and GPU cases at several scales within a time budget per scale.

The same cases, runner and results format as ``recsys-fast bench`` (``recsys_fast.harness``),
with two differences that suit a rented GPU box with a hard time limit:

* the results file is rewritten (atomically) after every case, so a run killed by an outer
  ``timeout`` keeps everything it finished;
* each scale has a soft budget: once it is spent, the remaining cases of that scale are recorded
  as skipped ("time budget ... spent") instead of being started.

By default it runs every kernel that has a GPU case (the ``dnn_*`` cases only when TensorFlow is
importable; ``bench/gpu/check.sh`` times the DNN on JAX / PyTorch separately), on the CPU and
the GPU, all implementations at ``--all-impl-scales`` and the optimised one elsewhere (the
equivalence checks still compute the naive reference where it fits in memory).

Usage::

    python bench/gpu/run_gpu_cases.py --scales 100k,1m,10m,25m --budgets 45,55,60,50 \\
        --out results-gpu [--quick] [--kernels a,b] [--backend cpu,gpu] [--first a,b]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # runnable from a bare checkout (PYTHONPATH not set)
    sys.path.insert(0, str(REPO))

from recsys_fast import backend as _backend  # noqa: E402
from recsys_fast.harness.cases.registry import check_scales, default_registry  # noqa: E402
from recsys_fast.harness.run import machine as _machine  # noqa: E402
from recsys_fast.harness.run.context import CaseContext  # noqa: E402
from recsys_fast.harness.run.runner import QUICK, CaseResult, RunSettings, groups, run_group  # noqa: E402
from recsys_fast.harness.stats.compare import ratios  # noqa: E402
from recsys_fast.results_store import (  # noqa: E402
    atomic_write_text,
    build_results,
    results_path,
    validate,
)
from recsys_fast.results_store.journal import run_name  # noqa: E402


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def default_kernels(registry) -> list[str]:
    """Kernels with a GPU case; DNN kernels only when TensorFlow is importable."""
    has_tf = importlib.util.find_spec("tensorflow") is not None
    gpu = {c.kernel for c in registry if c.backend == "gpu"}
    return [k for k in registry.kernels if k in gpu and (has_tf or not k.startswith("dnn"))]


def budgets_for(scales: list[str], budgets: list[float]) -> dict[str, float]:
    if len(budgets) == 1:
        budgets = budgets * len(scales)
    if len(budgets) != len(scales):
        raise SystemExit(f"--budgets needs one value or one per scale ({len(scales)}), "
                         f"got {len(budgets)}")
    return dict(zip(scales, budgets, strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", type=_csv, default=["100k", "1m", "10m", "25m"])
    p.add_argument("--budgets", type=_csv, default=["60"],
                   help="seconds per scale (one value for all, or one per scale)")
    p.add_argument("--kernels", type=_csv, default=None)
    p.add_argument("--backend", type=_csv, default=["cpu", "gpu"])
    p.add_argument("--all-impl-scales", type=_csv, default=["100k"],
                   help="scales at which naive and peer implementations are timed too")
    p.add_argument("--first", type=_csv, default=["cosine_topk", "csr_build"],
                   help="kernels run first at every scale (the rest follow in registry order)")
    p.add_argument("--quick", action="store_true", help="3 rounds, at most ~3 s per case")
    p.add_argument("--out", required=True, help="results folder (<out>/<machine>/<stamp>.json)")
    p.add_argument("--ml100k", default=None, help="real MovieLens 100K folder for scale 100k")
    args = p.parse_args(argv)

    registry = default_registry()
    scales = check_scales(args.scales)
    budget = budgets_for(scales, [float(b) for b in args.budgets])
    kernels = args.kernels or default_kernels(registry)
    backends = [b for b in args.backend if b != "gpu" or _backend.gpu_available()]
    if "gpu" in args.backend and "gpu" not in backends:
        print(f"note: no usable GPU ({_backend.gpu_unavailable_reason()}); CPU cases only",
              flush=True)
    cases = registry.select(kernels, None, backends)
    # headline kernels first at every scale, so a spent budget skips the others
    rank = {k: i for i, k in enumerate(args.first)}
    cases.sort(key=lambda c: rank.get(c.kernel, len(rank)))
    settings = RunSettings(**asdict(QUICK)) if args.quick else RunSettings()

    header = _machine.environment(gemm_n=1024 if args.quick else 2048)
    mid = header["machine_id"]
    ctx = CaseContext(registry, ml100k=args.ml100k)
    rows: list[dict] = []
    created = datetime.now(timezone.utc)
    name = run_name(created)
    path = results_path(args.out, mid, name)

    def save() -> None:
        data = build_results(
            rows, **header, created=created, data_sources=dict(ctx.data_sources),
            run=name, ratios=ratios(rows),
            settings={**asdict(settings), "quick": args.quick, "scales": scales,
                      "kernels": kernels, "budgets_s": budget,
                      "all_impl_scales": args.all_impl_scales, "driver": "bench/gpu",
                      "memory_budget_bytes": ctx.budget()},
            scale_shapes={sc: {k: v for k, v in asdict(ctx.spec(sc)).items() if k != "name"}
                          for sc in scales},
        )
        validate(data, path)
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    last_scale = None
    started: dict[str, float] = {}
    for _kernel, scale, group in groups(cases, scales):
        group = [c for c in group if scale in args.all_impl_scales or c.impl == "optimised"]
        if not group:
            continue
        if scale != last_scale and last_scale is not None:
            ctx.clear()
            pool = _backend.get_backend("gpu").memory_pool() if "gpu" in backends else None
            if pool is not None:
                pool.free_all_blocks()
        else:
            ctx.clear(references_only=True)
        last_scale = scale
        t0 = started.setdefault(scale, time.perf_counter())
        spent = time.perf_counter() - t0
        if spent > budget[scale]:
            results = [CaseResult(c.kernel, c.impl, c.backend, scale, status="skipped",
                                  skipped_reason=f"time budget of {budget[scale]:g} s for "
                                  f"scale {scale} spent") for c in group]
        else:  # one group interleaved, in this process (the box's time is budgeted)
            results = run_group(group, scale, ctx, settings)
        for res in results:
            rows.append(res.to_dict())
            shown = (f"{res.median_s:.4g} s" if res.median_s is not None
                     else res.skipped_reason or res.error or "")
            print(f"[{time.perf_counter() - t0:6.1f}s] {res.key:42s} {scale:5s} "
                  f"{res.status:7s} {shown} {res.verdict or ''}", flush=True)
        save()
    ctx.clear()
    print(f"results written to {path}")
    return 1 if any(r["status"] == "error" or (r.get("verdict") or "").startswith("mismatch")
                    for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
