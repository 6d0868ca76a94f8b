"""Regret of ``cosine_topk``'s default strategy (``auto``) in fresh processes.

Run from the repository root::

    python bench/auto_regret.py [--processes 20] [--rounds 3] [--inputs ml-100k,1m-steep,...]

Inputs: the real sets (``$RECSYS_FAST_SHARED``), synthetic ``<scale>-<shape>`` with a shape of
:data:`recsys_fast.data.SHAPES`, and near-dense ``100k-dense`` / ``1m-dense``. Each is written
once as a users x items CSR; then ``--processes`` fresh Python processes each load it and, for
item-item (items x users) and user-user (users x items) and k = 10, 50, 99 in a shuffled
order, time ``cosine_topk(X, k)`` with default arguments against ``strategy="sparse"`` and
``strategy="dense"``: ``--rounds`` rounds, each in a shuffled order, after one warm-up call of each
(numba's cache and the per-machine dense rates are warm, as for a user's second call); calls
under 0.5 s / ``--rounds`` get more rounds, up to :data:`MAX_ROUNDS`. Each timed call follows
a 0.15 s busy pause: OpenBLAS threads spin for about 0.1 s after a GEMM, and a numba kernel
started meanwhile ran 3-5x slower here, which would charge the dense strategy's GEMM to
whichever call came next. Regret = median time of the default call / the lower of the two
strategies' medians, in the same process; ``auto`` decides on its first call in a process (its
trial) and keeps the choice for that input, so the first call's time is recorded apart
(``first_call_regret``: it includes the trial). ``dense`` is not timed where its modelled time is
more than :data:`DENSE_SKIP` times the sparse call's (recorded as skipped, with the model's
figure: at 10m it would take minutes). Writes
``results/<machine>/studies/auto_regret_<ts>.json`` and prints the worst regret per input,
with the CPU model. Run it on a quiet machine: anything else running skews short calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KS = (10, 50, 99)
DENSE_SKIP = 4.0
PAUSE_S = 0.15  # before each timed call: BLAS threads left spinning by a GEMM go idle
MAX_ROUNDS = 5  # short calls get more rounds, up to this many


def _busy(seconds: float) -> None:
    """Wait on this thread, busy: a sleeping process let this VM idle its vCPUs, and half the
    calls after a 0.3 s sleep took twice as long (10 vs 20 ms here), none after a busy wait."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
# Near-dense inputs (a third of the cells rated), where the dense strategy can win; every
# other synthetic input is "<scale>-<shape>" with a shape of recsys_fast.data.SHAPES.
DENSE_SIZES = {"100k": {"n_users": 400, "n_items": 800, "min_per_user": 60,
                        "max_user_share": 0.9},
               "1m": {"n_users": 2000, "n_items": 1500, "min_per_user": 200,
                      "max_user_share": 0.9}}
REAL = {"ml-100k": "ml-100k", "ml-latest-small": "ml-latest-small"}
DEFAULT_INPUTS = ("ml-100k", "ml-latest-small", "100k-default", "100k-steep", "100k-mandelbrot",
                  "100k-dense", "1m-default", "1m-dense", "10m-default")


def synthetic_spec(name: str):
    """The SyntheticSpec of a synthetic input name; ValueError for an unknown one."""
    from recsys_fast.data.synthetic import SCALES, SHAPES, shaped

    scale, _, shape = name.partition("-")
    if scale not in SCALES or (shape not in SHAPES and not (shape == "dense"
                                                            and scale in DENSE_SIZES)):
        raise ValueError(f"unknown input {name!r}: give <scale>-<shape> with a scale of "
                         f"{sorted(SCALES)} and a shape of {sorted(SHAPES)} (or 100k-dense, "
                         f"1m-dense), or a real set {sorted(REAL)}")
    if shape != "dense":
        return shaped(scale, shape)
    spec = dataclasses.replace(shaped(scale), **DENSE_SIZES[scale], name=name)
    return dataclasses.replace(spec, n_ratings=min(spec.n_ratings,
                                                   spec.n_users * spec.n_items // 3))


def checked_inputs(ap: argparse.ArgumentParser, inputs: str) -> list[str]:
    """The input names of a comma list; ``ap.error`` naming an unknown one."""
    names = [s for s in inputs.split(",") if s]
    for name in names:
        if name not in REAL:
            try:
                synthetic_spec(name)
            except ValueError as exc:
                ap.error(str(exc))
    return names


def fresh_process(script: str, *args, what: str) -> str:
    """The stdout of ``python script --child args...`` in a fresh process; SystemExit naming
    ``what`` and the end of its stderr when it fails."""
    out = subprocess.run([sys.executable, script, "--child", *map(str, args)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def study_path(study: str, info: dict) -> Path:
    """``results/<machine>/studies/<study>_<UTC time>.json``, its folder made."""
    from recsys_fast.harness.run.machine import machine_id

    out = (Path(__file__).resolve().parents[1] / "results" / machine_id(info) / "studies"
           / f"{study}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def build_input(name: str, folder: Path) -> Path:
    """Users x items float32 CSR of ``name`` saved as ``.npz``; its shape facts as ``.json``."""
    import numpy as np
    import scipy.sparse as sp

    from recsys_fast.data import generate, load_ml100k, load_movielens

    if name in REAL:
        root = Path(os.environ.get("RECSYS_FAST_SHARED", Path(__file__).resolve().parents[2]
                                   / "shared" / "datasets"))
        path = root / REAL[name]
        inter = load_ml100k(path) if name == "ml-100k" else load_movielens(path)
        source = {"real": f"$RECSYS_FAST_SHARED/{REAL[name]}"}  # no machine paths
    else:
        spec = synthetic_spec(name)
        inter = generate(spec)
        source = {"generator": "recsys_fast.data.synthetic", **dataclasses.asdict(spec)}
    X = sp.csr_matrix((inter.values, (inter.user_idx, inter.item_idx)), shape=inter.shape,
                      dtype=np.float32)
    out = folder / f"{name}.npz"
    sp.save_npz(out, X)
    (folder / f"{name}.json").write_text(json.dumps(
        {"source": source, "shape": list(X.shape), "nnz": int(X.nnz)}, default=str))
    return out


def child(path: Path, rounds: int, seed: int) -> None:
    """One fresh process: every (kind, k) of one input; one JSON line per configuration."""
    import numpy as np
    import scipy.sparse as sp

    from recsys_fast.kernels import _topk_auto, core
    from recsys_fast.kernels import similarity as sim

    sim.warmup()
    R = sp.load_npz(path).tocsr()
    configs = [(kind, k) for kind in ("item-item", "user-user") for k in KS]
    random.Random(seed).shuffle(configs)
    for kind, k in configs:
        X = R.T.tocsr() if kind == "item-item" else R
        k = min(k, X.shape[0] - 1)
        dense_s = _topk_auto.dense_seconds(X.shape, k, core.resolve_threads(None))
        calls = {"auto": {}, "sparse": {"strategy": "sparse"}, "dense": {"strategy": "dense"}}
        _busy(PAUSE_S)
        t0 = time.perf_counter()
        first = sim.cosine_topk_result(X, k)  # the decision (auto keeps it for the process)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim.cosine_topk_result(X, k, strategy="sparse")
        sparse_once = time.perf_counter() - t0
        skip = None
        if dense_s > DENSE_SKIP * sparse_once:
            skip = f"modelled {dense_s:.3g} s > {DENSE_SKIP:g} x sparse ({sparse_once:.3g} s)"
            del calls["dense"]
        else:
            sim.cosine_topk_result(X, k, strategy="dense")
        names = list(calls)
        times = {s: [] for s in names}
        picks = []
        order = random.Random(seed * 7919 + k)
        for _ in range(max(rounds, min(MAX_ROUNDS, int(0.5 / max(sparse_once, 1e-3))))):
            for s in order.sample(names, len(names)):  # no call always follows the same one
                _busy(PAUSE_S)
                t0 = time.perf_counter()
                res = sim.cosine_topk_result(X, k, **calls[s])
                times[s].append(time.perf_counter() - t0)
                if s == "auto":
                    picks.append(res.strategy)
        med = {s: statistics.median(v) for s, v in times.items() if v}
        best = min(med.get("sparse", np.inf), med.get("dense", np.inf))
        print(json.dumps({"kind": kind, "k": k, "shape": list(X.shape), "nnz": int(X.nnz),
                          "median_s": med, "times_s": times, "auto_picks": picks,
                          "dense_modelled_s": dense_s, "dense_skipped": skip,
                          "first_call_s": first_s, "first_pick": first.strategy,
                          "first_call_regret": first_s / best,
                          "regret": med["auto"] / best}), flush=True)


def decision_regret(row: dict) -> float:
    """Median time of the strategy auto picked, timed on its own, over the best strategy's:
    what the choice cost, without the noise between two timings of the same code."""
    pick = _pick(row)
    med = row["median_s"]
    best = min(v for k, v in med.items() if k != "auto")
    return med.get(pick, med["auto"]) / best


def rule_regrets(rows: list[dict]) -> list[dict]:
    """Per configuration (input, kind, k) over its processes: ``rule`` = the median time of the
    strategy auto picked (each process's median of it) over the lower of the two strategies'
    medians across processes: what the rule costs, with each process's noise averaged out;
    ``floor`` = the worst single-process regret of always running the strategy that is best
    across processes: the regret that per-process noise alone shows, whatever the rule."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "regret" in r:
            groups.setdefault((r["input"], r["kind"], r["k"]), []).append(r)
    out = []
    for (name, kind, k), mine in groups.items():
        timed = [s for s in ("sparse", "dense") if all(s in r["median_s"] for r in mine)]
        across = {s: statistics.median(r["median_s"][s] for r in mine) for s in timed}
        best = min(across, key=across.get)
        picked = statistics.median(
            r["median_s"].get(_pick(r), r["median_s"]["auto"]) for r in mine)
        floor = max(r["median_s"][best] / min(r["median_s"][s] for s in timed) for r in mine)
        out.append({"input": name, "kind": kind, "k": k, "rule": picked / across[best],
                    "floor": floor, "best": best,
                    "picks": sorted({_pick(r) for r in mine})})
    return out


def _pick(row: dict) -> str:
    picks = row["auto_picks"] or [row["first_pick"]]
    return max(set(picks), key=picks.count)


def _users_items(row: dict) -> tuple[int, int]:
    """(users, items) of a row's input: X is items x users for item-item."""
    n, m = row["shape"]
    return (n, m) if row["kind"] == "user-user" else (m, n)


def summary_table(rows: list[dict]) -> str:
    """Markdown: per input, the worst and median regret, the worst decision regret, the worst
    first-call regret, and how often auto took the faster strategy."""
    lines = ["| input | shape (users x items) | configurations | regret: worst / median | "
             "decision regret: worst | rule regret: worst | noise floor | first call: worst | "
             "auto took the faster | picks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rules = rule_regrets(rows)
    for name in dict.fromkeys(r["input"] for r in rows):
        mine = [r for r in rows if r["input"] == name and "regret" in r]
        if not mine:
            continue
        reg = sorted(r["regret"] for r in mine)
        dec = [decision_regret(r) for r in mine]
        right = sum(1 for r in mine if decision_regret(r) <= 1.0 + 1e-12)
        picks = sorted({p for r in mine for p in r["auto_picks"]})
        users, items = _users_items(mine[0])
        rule = [g for g in rules if g["input"] == name]
        lines.append(f"| {name} | {users:,} x {items:,} | {len(mine)} | {reg[-1]:.3f} / {statistics.median(reg):.3f} | "
                     f"{max(dec):.3f} | {max(g['rule'] for g in rule):.3f} | "
                     f"{max(g['floor'] for g in rule):.3f} | "
                     f"{max(r['first_call_regret'] for r in mine):.2f} | "
                     f"{right} of {len(mine)} | {', '.join(picks)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", default=",".join(DEFAULT_INPUTS))
    ap.add_argument("--processes", type=int, default=20)
    ap.add_argument("--processes-10m", type=int, default=20,
                    help="fresh processes for the 10m inputs (each takes minutes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--summarize", type=Path, default=None,
                    help="print the summary table of an earlier study's JSON file and exit")
    ap.add_argument("--child", nargs=3, metavar=("NPZ", "ROUNDS", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), int(args.child[2]))
        return 0
    if args.summarize:
        print(summary_table(json.loads(args.summarize.read_text())["rows"]))
        return 0
    from recsys_fast.harness.run.machine import blas_info, git_info, machine_info
    from recsys_fast.memory import cpu_model

    names = checked_inputs(ap, args.inputs)
    info = machine_info()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="auto-regret-") as tmp:
        for name in names:
            t0 = time.perf_counter()
            try:
                npz = build_input(name, Path(tmp))
            except (OSError, ValueError) as exc:  # a real set that is absent
                print(f"{name}: skipped ({exc})", flush=True)
                rows.append({"input": name, "skipped": str(exc)})
                continue
            facts = json.loads((Path(tmp) / f"{name}.json").read_text())
            print(f"{name}: {facts['shape']} nnz {facts['nnz']:,} "
                  f"({time.perf_counter() - t0:.1f} s to build)", flush=True)
            for p in range(args.processes_10m if name.startswith("10m") else args.processes):
                out = fresh_process(__file__, npz, args.rounds, p, what=f"{name} process {p}")
                for line in out.splitlines():
                    if line.startswith("{"):
                        rows.append({"input": name, "process": p, **facts, **json.loads(line)})
            mine = [r for r in rows if r.get("input") == name and "regret" in r]
            worst = max(mine, key=lambda r: r["regret"])
            print(f"  worst regret {worst['regret']:.3f} ({worst['kind']}, k={worst['k']}); "
                  f"picks: {sorted({p for r in mine for p in r['auto_picks']})}", flush=True)
    done = [r for r in rows if "regret" in r]
    summary = {
        "worst_regret": max(r["regret"] for r in done) if done else None,
        "worst_first_call_regret": max(r["first_call_regret"] for r in done) if done else None,
        "worst_decision_regret": max(decision_regret(r) for r in done) if done else None,
        "worst_rule_regret": max((g["rule"] for g in rule_regrets(done)), default=None),
        "worst_noise_floor": max((g["floor"] for g in rule_regrets(done)), default=None),
        "median_regret": statistics.median(r["regret"] for r in done) if done else None,
        "configurations": len(done),
    }
    record = {"study": "auto_regret", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git": git_info(), "machine": info, "blas": blas_info(),
              "processes": args.processes, "rounds": args.rounds, "ks": KS,
              "dense_skip_factor": DENSE_SKIP, "summary": summary, "rows": rows}
    out = args.out or study_path("auto_regret", info)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(summary_table(done))
    print(f"worst regret {summary['worst_regret']:.3f}, median {summary['median_regret']:.3f} "
          f"over {summary['configurations']} configurations; wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
