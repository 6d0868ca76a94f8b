"""Regret of ``predict_course``'s default strategy (``auto``, a density rule) on the CPU.

Run from the repository root::

    python bench/cf_course_regret.py [--processes 5] [--rounds 5] [--inputs ml-100k,...]

Inputs as in ``bench/auto_regret.py`` (real sets under ``$RECSYS_FAST_SHARED``, synthetic
``<scale>-<shape>``, near-dense ``100k-dense`` / ``1m-dense``), users x items. Each fresh
process times, for kind = user and item, ``predict_course(R, kind)`` with default arguments
against each strategy it can name (``numba``, ``dense``, ``sparse``), each round in a shuffled
order, after one untimed call of each, a 0.15 s busy pause before every timed call. Regret = the
default call's median over the best strategy's median in the same process; decision regret =
the picked strategy's own median over the best's. Writes
``results/<machine>/studies/cf_course_regret_<ts>.json`` and prints a table with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PAUSE_S = 0.15
STRATEGIES = ("numba", "dense", "sparse")
DEFAULT_INPUTS = ("ml-100k", "ml-latest-small", "100k-default", "100k-dense", "1m-default",
                  "1m-dense")


def child(path: Path, rounds: int) -> list[dict]:
    import scipy.sparse as sp
    from auto_regret import _busy

    from recsys_fast import kernels
    from recsys_fast.kernels import cf_course

    kernels.warmup()
    R = sp.load_npz(path).tocsr().astype("float64")
    rows = []
    for kind in ("user", "item"):
        calls = {"auto": {}, **{s: {"strategy": s} for s in STRATEGIES}}
        picked = cf_course._choose_strategy(R, "auto", cf_course.get_backend("cpu"))
        for kw in calls.values():
            kernels.predict_course(R, kind, **kw)
        names = list(calls)
        times = {s: [] for s in names}
        order = random.Random(rounds * 7919 + len(kind))
        for _ in range(rounds):
            for s in order.sample(names, len(names)):  # no call always follows the same one
                _busy(PAUSE_S)
                t0 = time.perf_counter()
                kernels.predict_course(R, kind, **calls[s])
                times[s].append(time.perf_counter() - t0)
        med = {s: statistics.median(v) for s, v in times.items()}
        best = min(med[s] for s in STRATEGIES)
        rows.append({"kind": kind, "shape": list(R.shape), "nnz": int(R.nnz),
                     "density": R.nnz / (R.shape[0] * R.shape[1]), "picked": picked,
                     "median_s": med, "times_s": times, "regret": med["auto"] / best,
                     "decision_regret": med[picked] / best,
                     "best": min(STRATEGIES, key=med.get)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| input | users x items | density | kind | auto picks | best (processes) | "
             "regret: worst / median | decision regret: worst |", "|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["input"], r["kind"]) for r in rows)
    for name, kind in keys:
        mine = [r for r in rows if r["input"] == name and r["kind"] == kind]
        u, i = mine[0]["shape"]
        best = {}
        for r in mine:
            best[r["best"]] = best.get(r["best"], 0) + 1
        reg = sorted(r["regret"] for r in mine)
        lines.append(f"| {name} | {u:,} x {i:,} | {mine[0]['density']:.1%} | {kind} | "
                     f"{mine[0]['picked']} | "
                     f"{', '.join(f'{k} ({v})' for k, v in sorted(best.items()))} | "
                     f"{reg[-1]:.3f} / {statistics.median(reg):.3f} | "
                     f"{max(r['decision_regret'] for r in mine):.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", default=",".join(DEFAULT_INPUTS))
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("NPZ", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]))), flush=True)
        return 0
    from auto_regret import build_input, checked_inputs, fresh_process, study_path

    from recsys_fast.harness.run.machine import blas_info, git_info, machine_info
    from recsys_fast.memory import cpu_model

    names = checked_inputs(ap, args.inputs)
    info = machine_info()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cf-course-regret-") as tmp:
        for name in names:
            try:
                npz = build_input(name, Path(tmp))
            except (OSError, ValueError) as exc:
                print(f"{name}: skipped ({exc})", flush=True)
                continue
            for p in range(args.processes):
                out = fresh_process(__file__, npz, args.rounds, what=f"{name} process {p}")
                for row in json.loads(out.strip().splitlines()[-1]):
                    rows.append({"input": name, "process": p, **row})
            mine = [r for r in rows if r["input"] == name]
            print(f"{name}: worst decision regret "
                  f"{max(r['decision_regret'] for r in mine):.3f}", flush=True)
    record = {"study": "cf_course_regret",
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": git_info(),
              "machine": info, "blas": blas_info(), "processes": args.processes,
              "rounds": args.rounds, "rows": rows}
    out = args.out or study_path("cf_course_regret", info)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(table(rows))
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
