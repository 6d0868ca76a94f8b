"""Same-process ratios of the issue-15 targets: ``csr_build`` and ``dnn_epoch``.

Builds each scale's inputs through the harness's own cases (``default_registry()``: the same
setup, the same timed call), then times the implementations interleaved (A, B, C, A, B, C, ...)
and prints medians and ratios with the CPU model. Quick, not a results file: use
``recsys-fast bench`` for those.

Usage::

    PYTHONPATH=. python bench/kernel_targets.py                     # csr 1m,10m,25m + dnn 1m
    PYTHONPATH=. python bench/kernel_targets.py --csr 1m --rounds 9 --no-dnn
    PYTHONPATH=. python bench/kernel_targets.py --no-csr --dnn-rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from recsys_fast.memory import cpu_model


def interleaved(runs: dict, rounds: int, states: dict) -> dict[str, list[float]]:
    """Seconds per call of each ``runs[name](states[name])``, round-robin, ``rounds`` times."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(states[name])
            times[name].append(time.perf_counter() - t0)
    return times


def _median_line(name: str, ts: list[float], per: float | None = None) -> str:
    med = statistics.median(ts)
    extra = f"  {per / med:,.0f} examples/s" if per else ""
    return f"  {name:<10} median {med * 1e3:10.2f} ms  (min {min(ts) * 1e3:.2f}){extra}"


def _same_csr(a, b) -> bool:
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


def csr(reg, ctx, scales: list[str], rounds: int) -> None:
    for scale in scales:
        names = ["optimised", "scipy"]
        if scale in ("100k", "1m"):  # the dense naive matrix of 10m / 25m is over any budget
            names.insert(0, "naive")
        cases = {n: reg.get("csr_build", n, "cpu") for n in names}
        states = {n: c.setup(ctx, scale) for n, c in cases.items()}
        results = {n: c.run(states[n]) for n, c in cases.items()}  # warm-up: compile, page in
        if "naive" in names:  # the harness's own check: entry by entry vs the dense matrix
            verdict = cases["optimised"].check(ctx, states["optimised"], results["optimised"])
            print(f"csr_build {scale} optimised: {verdict.text} ({verdict.against})"
                  if verdict else f"csr_build {scale} optimised: no check")
        else:  # the dense reference would take minutes: exact CSR arrays vs scipy's
            same = _same_csr(results["optimised"], results["scipy"])
            print(f"csr_build {scale} optimised: {'equal' if same else 'MISMATCH'} "
                  "(indptr, indices, data of scipy coo->csr)")
        del results
        times = interleaved({n: c.run for n, c in cases.items()}, rounds, states)
        nnz = cases["optimised"].examples(states["optimised"])
        print(f"csr_build {scale} (nnz {nnz:,.0f}, {rounds} interleaved rounds)")
        for n in names:
            print(_median_line(n, times[n]))
        opt = statistics.median(times["optimised"])
        for n in names:
            if n != "optimised":
                print(f"  {n}/optimised = {statistics.median(times[n]) / opt:.2f}x")
        ctx.clear()


def dnn(reg, ctx, scale: str, rounds: int) -> None:
    cases = {n: reg.get("dnn_epoch", n, "cpu") for n in ("naive", "optimised")}
    states = {n: c.setup(ctx, scale) for n, c in cases.items()}
    for n, c in cases.items():  # first epoch traces the training function: not timed
        c.run(states[n])
    examples = {n: cases[n].examples(states[n]) for n in cases}
    times = interleaved({n: c.run for n, c in cases.items()}, rounds, states)
    print(f"dnn_epoch {scale} ({rounds} interleaved epochs, examples per call: "
          + ", ".join(f"{n} {examples[n]:,.0f}" for n in cases) + ")")
    rate = {}
    for n in cases:
        print(_median_line(n, times[n], examples[n]))
        rate[n] = examples[n] / statistics.median(times[n])
    print(f"  optimised/naive examples/s = {rate['optimised'] / rate['naive']:.2f}x")
    st = states["optimised"]  # the prepared training state sits under one of these names
    for name in ("state", "train"):
        st = st.get(name, st) if isinstance(st, dict) else getattr(st, name, st)
    opts = getattr(st, "options", None) or {}
    print("  optimised options: " + ", ".join(f"{k}={opts[k]}" for k in sorted(opts)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csr", default="1m,10m,25m", help="comma-separated scales")
    ap.add_argument("--rounds", type=int, default=7, help="csr_build rounds (>= 7)")
    ap.add_argument("--no-csr", action="store_true")
    ap.add_argument("--dnn", default="1m", help="scale of the dnn_epoch comparison")
    ap.add_argument("--dnn-rounds", type=int, default=3)
    ap.add_argument("--no-dnn", action="store_true")
    args = ap.parse_args(argv)

    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext

    reg = default_registry()
    ctx = CaseContext(reg)
    print(f"CPU: {cpu_model()}")
    if not args.no_csr:
        csr(reg, ctx, [s for s in args.csr.split(",") if s], args.rounds)
    if not args.no_dnn:
        dnn(reg, ctx, args.dnn, args.dnn_rounds)


if __name__ == "__main__":
    main()
