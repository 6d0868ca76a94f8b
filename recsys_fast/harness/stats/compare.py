"""Speedups between the rows of one run: naive -> optimised, ours -> peers, CPU -> GPU.

A speedup is ``median(baseline) / median(candidate)`` (> 1: the candidate is faster) with a 95 %
bootstrap interval (:mod:`~recsys_fast.harness.stats`), computed only between cases that ran
(``status == "ok"``) at the same scale **in the same run**: rows merged from several files carry
their file in ``"_run"`` and are never divided across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys_fast.harness.cases.registry import OURS, SCALES
from recsys_fast.harness.stats import Ratio, ratio_ci

KINDS = ("naive_to_optimised", "peers_to_ours", "cpu_to_gpu", "cpu_to_dask")


@dataclass(frozen=True)
class Speedup:
    kernel: str
    scale: str
    baseline: str  # "impl/backend"
    candidate: str
    baseline_s: float
    candidate_s: float
    ci: Ratio | None = None  # None when a side has no per-round times (old files)
    run: str | None = None

    @property
    def factor(self) -> float:
        return self.baseline_s / self.candidate_s if self.candidate_s > 0 else float("inf")


def index(cases: list[dict]) -> dict[tuple[str, str, str, str], dict]:
    """(kernel, impl, backend, scale) -> case row (rows of one run)."""
    return {(c["kernel"], c["impl"], c["backend"], c["scale"]): c for c in cases}


def _ok(row: dict | None) -> bool:
    return row is not None and row.get("status") == "ok" and bool(row.get("median_s"))


def _paired(a: dict, b: dict) -> bool:
    """Round r of both was timed in the same cycle of the same worker."""
    return (bool(a.get("interleaved")) and a.get("worker") is not None
            and a.get("worker") == b.get("worker") and a.get("rounds") == b.get("rounds"))


def pair(base: dict | None, cand: dict | None) -> Speedup | None:
    if not (_ok(base) and _ok(cand)):
        return None
    if base.get("_run") != cand.get("_run"):
        return None  # never a ratio across runs
    ci = None
    if base.get("times_s") and cand.get("times_s"):
        ci = ratio_ci(base["times_s"], cand["times_s"], paired=_paired(base, cand))
    return Speedup(base["kernel"], base["scale"], f"{base['impl']}/{base['backend']}",
                   f"{cand['impl']}/{cand['backend']}", base["median_s"], cand["median_s"], ci,
                   base.get("_run"))


def kernels_and_scales(cases: list[dict]) -> tuple[list[str], list[str]]:
    kernels = list(dict.fromkeys(c["kernel"] for c in cases))
    scales = sorted({c["scale"] for c in cases}, key=lambda s: SCALES.index(s) if s in SCALES else 99)
    return kernels, scales


def impl_order(cases: list[dict]) -> list[str]:
    """Implementations of some result rows: naive, optimised, then peers in first-seen order."""
    found = dict.fromkeys(c["impl"] for c in cases)
    return sorted(found, key=lambda i: OURS.index(i) if i in OURS else len(OURS))


def _by_run(cases: list[dict]) -> list[list[dict]]:
    runs: dict[object, list[dict]] = {}
    for c in cases:
        runs.setdefault(c.get("_run"), []).append(c)
    return list(runs.values())


def other_function(case: dict | None) -> bool:
    """Whether ``case`` is a peer computing another function than ours (verdict ``n/a``)."""
    return case is not None and case["impl"] not in OURS and case.get("verdict") == "n/a"


def speedups(cases: list[dict]) -> dict[str, list[Speedup]]:
    """``{"naive_to_optimised": [...], "peers_to_ours": [...], "cpu_to_gpu": [...]}``.

    ``naive_to_optimised``: naive/cpu -> optimised on each backend; ``peers_to_ours``: each
    peer/cpu -> optimised/cpu, except a peer computing another function (verdict ``n/a``:
    compared on quality, a time ratio would compare unlike work); ``cpu_to_gpu`` /
    ``cpu_to_dask``: each impl's cpu -> gpu / dask case. Within one run only.
    """
    out: dict[str, list[Speedup]] = {k: [] for k in KINDS}
    for run_cases in _by_run(cases):
        idx = index(run_cases)
        kernels, scales = kernels_and_scales(run_cases)
        impls = impl_order(run_cases)
        for k in kernels:
            for s in scales:
                def get(impl, be, k=k, s=s, idx=idx):
                    return idx.get((k, impl, be, s))

                for be in ("cpu", "gpu"):
                    sp = pair(get("naive", "cpu"), get("optimised", be))
                    if sp:
                        out["naive_to_optimised"].append(sp)
                for peer in (i for i in impls if i not in OURS):
                    if other_function(get(peer, "cpu")):
                        continue
                    sp = pair(get(peer, "cpu"), get("optimised", "cpu"))
                    if sp:
                        out["peers_to_ours"].append(sp)
                for impl in impls:
                    sp = pair(get(impl, "cpu"), get(impl, "gpu"))
                    if sp:
                        out["cpu_to_gpu"].append(sp)
                    sp = pair(get(impl, "cpu"), get(impl, "dask"))
                    if sp:
                        out["cpu_to_dask"].append(sp)
    return out


def ratios(cases: list[dict]) -> list[dict]:
    """Every speedup of a run as a plain dict with its interval (stored in results files)."""
    out = []
    for kind, items in speedups(cases).items():
        for sp in items:
            row = {"kind": kind, "kernel": sp.kernel, "scale": sp.scale,
                   "baseline": sp.baseline, "candidate": sp.candidate, "value": sp.factor}
            if sp.ci is not None:
                row.update({k: v for k, v in sp.ci.to_dict().items() if k != "value"})
            out.append(row)
    return out


def row_speedups(row: dict, idx: dict) -> dict[str, Speedup | None]:
    """For one row: ``vs_naive`` (naive/cpu -> this), ``ours_vs_this`` (peer rows: this ->
    optimised/cpu, i.e. how much faster ours is) and ``gpu_vs_cpu`` (gpu and dask rows: the same
    impl's cpu case -> this)."""
    k, impl, be, s = row["kernel"], row["impl"], row["backend"], row["scale"]
    return {
        "vs_naive": None if impl == "naive" else pair(idx.get((k, "naive", "cpu", s)), row),
        "ours_vs_this": pair(row, idx.get((k, "optimised", "cpu", s))) if impl not in OURS else None,
        "gpu_vs_cpu": pair(idx.get((k, impl, "cpu", s)), row) if be != "cpu" else None,
    }


def fmt_ratio(sp: Speedup | None, bold: bool = False, compact: bool = False) -> str:
    """``2.31x [2.20, 2.45]`` (`` (~ no difference)`` when the interval contains 1); ``compact``
    for plain-text tables: ``2.31x [2.2-2.45]``, ``~`` prefixed."""
    if sp is None:
        return "-"
    v = f"{sp.factor:.3g}x"
    if bold:
        v = f"**{v}**"
    if sp.ci is None:
        return v
    if compact:
        return f"{'' if sp.ci.significant else '~'}{v} [{sp.ci.lo:.3g}-{sp.ci.hi:.3g}]"
    mark = "" if sp.ci.significant else " (~ no difference)"
    return f"{v} [{sp.ci.lo:.3g}, {sp.ci.hi:.3g}]{mark}"


def compare_runs(base: dict, head: dict) -> list[dict]:
    """Per case present and ok in both results documents: ``head`` time over ``base`` time
    (> 1: slower in ``head``) with an unpaired bootstrap interval, and ``same_data`` where both
    rows name their data's digest. Across runs nothing pairs the rounds, so machine drift
    between the runs is **not** controlled; this is context, not a gate."""
    a = index([c for c in base["cases"] if _ok(c)])
    out = []
    for key, hc in index([c for c in head["cases"] if _ok(c)]).items():
        bc = a.get(key)
        if bc is None:
            continue
        row = {"kernel": key[0], "impl": key[1], "backend": key[2], "scale": key[3],
               "base_s": bc["median_s"], "head_s": hc["median_s"],
               "ratio": hc["median_s"] / bc["median_s"]}
        if bc.get("data") and hc.get("data"):  # the provenance digests of the two rows' data
            row["same_data"] = bc["data"] == hc["data"]
        if bc.get("times_s") and hc.get("times_s"):
            r = ratio_ci(hc["times_s"], bc["times_s"], paired=False)
            row.update(lo=r.lo, hi=r.hi, significant=r.significant)
        out.append(row)
    return out
