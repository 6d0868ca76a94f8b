"""``cosine_topk`` with default arguments against implicit's ``CosineRecommender`` on the real
rating sets, each in fresh processes, as a new user would call them.

Run from the repository root::

    python bench/real_vs_implicit.py [--processes 10] [--rounds 9] [--sets ml-100k,...]

Sets (under ``$RECSYS_FAST_SHARED``): ML-100K, ml-latest-small and The Movies Dataset's
``ratings_small.csv``. Each fresh process loads one set through the public loaders, builds the
items x users CSR and times, in interleaved rounds after one untimed call of each (numba's cache
warm, as for a user's second call; the first call, ``auto``'s decision, is recorded apart):

- ours: ``recsys_fast.kernels.cosine_topk(items, 50)``, default arguments (every core, ``auto``);
- implicit: ``CosineRecommender(K=51).fit(user_items)`` (it keeps the item itself, so 51 holds
  the same 50 neighbours), default arguments otherwise.

A 0.15 s busy pause precedes each timed call (BLAS and numba threads left spinning by the call
before go idle). Per process: implicit's median over ours with a 95 % bootstrap interval
(rounds paired); per set: the lowest and the median of the processes. Writes
``results/<machine>/studies/real_vs_implicit_<ts>.json`` and prints a table with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

K = 50
PAUSE_S = 0.15
SETS = {"ml-100k": ("ml-100k", "load_ml100k"),
        "ml-latest-small": ("ml-latest-small", "load_movielens"),
        "movies-ratings-small": ("movies-dataset", "load_ratings_small")}


def shared_root() -> Path:
    return Path(os.environ.get("RECSYS_FAST_SHARED",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def child(name: str, rounds: int) -> dict:
    """One fresh process: one set, ours and implicit in interleaved rounds."""
    import numpy as np
    import scipy.sparse as sp
    from auto_regret import _busy
    from implicit.nearest_neighbours import CosineRecommender

    from recsys_fast import data, kernels
    from recsys_fast.harness.stats import ratio_ci

    folder, loader = SETS[name]
    inter = getattr(data, loader)(shared_root() / folder)
    X = sp.csr_matrix((inter.values.astype(np.float32), (inter.user_idx, inter.item_idx)),
                      shape=inter.shape)
    items = X.T.tocsr()

    def ours():
        return kernels.cosine_topk_result(items, K)

    def theirs():
        model = CosineRecommender(K=K + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, show_progress=False)
        return model.similarity

    kernels.warmup()
    _busy(PAUSE_S)
    t0 = time.perf_counter()
    first = ours()
    first_s = time.perf_counter() - t0
    theirs()
    times: dict[str, list[float]] = {"ours": [], "implicit": []}
    picks = []
    for r in range(rounds):
        for label, fn in ((("ours", ours), ("implicit", theirs)) if r % 2 == 0
                          else (("implicit", theirs), ("ours", ours))):
            _busy(PAUSE_S)
            t0 = time.perf_counter()
            out = fn()
            times[label].append(time.perf_counter() - t0)
            if label == "ours":
                picks.append(out.strategy)
    ratio = ratio_ci(times["implicit"], times["ours"], paired=True)
    return {"set": name, "shape_items_users": list(items.shape), "nnz": int(items.nnz),
            "median_s": {k: statistics.median(v) for k, v in times.items()}, "times_s": times,
            "first_call_s": first_s, "first_strategy": first.strategy, "strategies": picks,
            "ratio": ratio.value, "ci": [ratio.lo, ratio.hi]}


def table(rows: list[dict]) -> str:
    lines = ["| set | items x users | processes | implicit / ours: lowest [its 95 % CI] | "
             "median of processes | ours median (s) | implicit median (s) | strategies |",
             "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        low = min(mine, key=lambda r: r["ratio"])
        n, m = mine[0]["shape_items_users"]
        ours = statistics.median(r["median_s"]["ours"] for r in mine)
        theirs = statistics.median(r["median_s"]["implicit"] for r in mine)
        picks = sorted({s for r in mine for s in r["strategies"]})
        lines.append(f"| {name} | {n:,} x {m:,} | {len(mine)} | {low['ratio']:.2f}x "
                     f"[{low['ci'][0]:.2f}, {low['ci'][1]:.2f}] | "
                     f"{statistics.median(r['ratio'] for r in mine):.2f}x | {ours:.4f} | "
                     f"{theirs:.4f} | {', '.join(picks)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--processes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("SET", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))), flush=True)
        return 0
    names = [s for s in args.sets.split(",") if s]
    unknown = [s for s in names if s not in SETS]
    if unknown:
        ap.error(f"unknown set(s) {unknown}: choose from {sorted(SETS)}")
    if args.processes < 1 or args.rounds < 3:
        ap.error("--processes must be >= 1 and --rounds >= 3")
    from auto_regret import fresh_process, study_path

    from recsys_fast.harness.run.machine import blas_info, git_info, machine_info
    from recsys_fast.memory import cpu_model

    info = machine_info()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores", flush=True)
    rows, skipped = [], {}
    for name in names:
        if not (shared_root() / SETS[name][0]).is_dir():
            skipped[name] = f"{shared_root() / SETS[name][0]} not found"
            print(f"{name}: skipped ({skipped[name]})", flush=True)
            continue
        for p in range(args.processes):
            out = fresh_process(__file__, name, args.rounds, what=f"{name} process {p}")
            row = json.loads(out.strip().splitlines()[-1])
            rows.append({"process": p, **row})
            print(f"  {name} process {p}: {row['ratio']:.2f}x [{row['ci'][0]:.2f}, "
                  f"{row['ci'][1]:.2f}] ({row['first_strategy']})", flush=True)
    record = {"study": "real_vs_implicit", "k": K,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": git_info(),
              "machine": info, "blas": blas_info(), "processes": args.processes,
              "rounds": args.rounds, "skipped": skipped, "rows": rows}
    out = args.out or study_path("real_vs_implicit", info)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    if rows:
        print(table(rows))
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
