"""How often does the instruction gate catch a small slowdown, and pass unchanged code?

Clones this repository's HEAD into a temp folder and commits two injected slowdowns on their
own branches: about 3 % more work in ``cosine_topk``'s sparse path (one extra ``np.sort`` of
4/3 of the relabelled column indices per call) and about 3 % in ``csr_build``: a Python
generator summed over nnz / 120 numbers after the single-threaded counting sort, the path below
``PARALLEL_MIN_NNZ`` entries that the 100k case takes (about 418 instructions a number under
callgrind, CPython 3.11, against about 115 per rating for the build: 3.0 %). Then runs
``recsys-fast gate --metric instructions --kernels cosine_topk,csr_build`` ``--runs`` times per
condition (unchanged, each injection; conditions interleaved), each run a fresh gate (its own
workers under valgrind), and writes every run's ratios and verdicts with the tally to
``results/<machine>/studies/gate_rates_<UTC time>.json``::

    python bench/gate_rates.py --runs 20          # about 5 min per round of three on 2 vCPUs
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from auto_regret import study_path  # noqa: E402

from recsys_fast.harness.run.machine import git_info, machine_info  # noqa: E402

KERNELS = "cosine_topk,csr_build"
INJECTIONS = {
    "cosine_topk+3%": ("recsys_fast/kernels/_topk_sparse.py",
                       "        self.cost = bl.block_costs(indptr, indices, colptr, pos)\n",
                       "        self._extra = np.sort(np.concatenate(  # injected work\n"
                       "            [indices, indices[: indices.size // 3]]))\n"),
    "csr_build+3%": ("recsys_fast/kernels/interactions.py",
                     "    indptr, out_cols, vals = csr_last_wins(rows, cols, vals, n_rows, n_cols)\n",
                     "    sum(i for i in range(vals.size // 120))  # injected work\n"),
}
ROW = re.compile(r"^(\S+/optimised/cpu)\s+(\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s+(\w+)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=gate-rates",
                           "-c", "user.email=gate-rates@localhost", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def make_clone(tmp: Path) -> tuple[Path, dict[str, str]]:
    """The clone and each condition's head revision (``unchanged``: the base itself)."""
    clone = tmp / "repo"
    git(REPO, "clone", "-q", str(REPO), str(clone))
    base = git(clone, "rev-parse", "HEAD")
    heads = {"unchanged": base}
    for name, (path, anchor, insert) in INJECTIONS.items():
        git(clone, "checkout", "-q", "--detach", base)
        f = clone / path
        text = f.read_text()
        if text.count(anchor) != 1:
            raise SystemExit(f"{path}: the injection's anchor {anchor.strip()!r} is not found "
                             "exactly once; update INJECTIONS")
        f.write_text(text.replace(anchor, anchor + insert))
        git(clone, "commit", "-qam", f"inject {name}")
        heads[name] = git(clone, "rev-parse", "HEAD")
    git(clone, "checkout", "-q", "--detach", base)
    return clone, heads


def gate_once(clone: Path, base: str, head: str, scale: str, cache: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recsys_fast.bench_cli", "gate", "--metric",
                           "instructions", "--repo", str(clone), "--base", base, "--head", head,
                           "--kernels", KERNELS, "--scale", scale, "--cache", str(cache)],
                          capture_output=True, text=True)
    cases = {}
    for line in proc.stdout.splitlines():
        m = ROW.match(line)
        if m:
            cases[m.group(1).split("/")[0]] = {
                "base": int(m.group(3).replace(",", "")),
                "head": int(m.group(4).replace(",", "")),
                "ratio": float(m.group(5)), "verdict": m.group(6).lower()}
    if not cases:
        raise SystemExit(f"gate printed no case (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"exit": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "cases": cases}


def tally(runs: list[dict]) -> dict:
    """Per condition and kernel: verdict counts and the range of ratios."""
    out: dict = {}
    for r in runs:
        for kernel, c in r["cases"].items():
            t = out.setdefault(r["condition"], {}).setdefault(
                kernel, {"verdicts": {}, "ratio_min": c["ratio"], "ratio_max": c["ratio"]})
            t["verdicts"][c["verdict"]] = t["verdicts"].get(c["verdict"], 0) + 1
            t["ratio_min"] = min(t["ratio_min"], c["ratio"])
            t["ratio_max"] = max(t["ratio_max"], c["ratio"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="gate runs per condition (default 20)")
    ap.add_argument("--scale", default="100k")
    ap.add_argument("--out", default=None, help="JSON path (default results/<machine>/studies)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    info = machine_info()
    print(f"CPU: {info.get('cpu_model')}, {info.get('cores_logical')} logical cores", flush=True)
    path = Path(args.out) if args.out else study_path("gate_rates", info)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"study": "gate_rates", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git": git_info(REPO), "machine": info, "cpu_model": info.get("cpu_model"),
              "scale": args.scale, "kernels": KERNELS, "runs_per_condition": args.runs,
              "injections": {k: v[2] for k, v in INJECTIONS.items()},
              "complete": False, "tally": {}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="gate-rates-") as tmp:
        clone, heads = make_clone(Path(tmp))
        for n in range(args.runs):
            for condition, head in heads.items():
                r = gate_once(clone, heads["unchanged"], head, args.scale, Path(tmp) / "cache")
                r.update(run=n, condition=condition)
                result["runs"].append(r)
                result["tally"] = tally(result["runs"])
                path.write_text(json.dumps(result, indent=1) + "\n")  # a stopped study keeps its runs
                print(f"run {n + 1}/{args.runs} {condition}: " + ", ".join(
                    f"{k} {c['ratio']:.4f} {c['verdict']}" for k, c in r["cases"].items())
                    + f" ({r['seconds']:.0f} s)", flush=True)
    result["complete"] = True
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["tally"], indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
