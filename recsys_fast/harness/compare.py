"""Speedups between the rows of a results file: naive -> optimised, ours -> peers, CPU -> GPU.

A speedup is ``median(baseline) / median(candidate)`` (> 1: the candidate is faster), computed
only between cases that ran (``status == "ok"``) at the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys_fast.harness.registry import IMPLS, PEERS, SCALES


@dataclass(frozen=True)
class Speedup:
    kernel: str
    scale: str
    baseline: str  # "impl/backend"
    candidate: str
    baseline_s: float
    candidate_s: float

    @property
    def factor(self) -> float:
        return self.baseline_s / self.candidate_s if self.candidate_s > 0 else float("inf")


def index(cases: list[dict]) -> dict[tuple[str, str, str, str], dict]:
    """(kernel, impl, backend, scale) -> case row."""
    return {(c["kernel"], c["impl"], c["backend"], c["scale"]): c for c in cases}


def _median(row: dict | None) -> float | None:
    if row is None or row.get("status") != "ok":
        return None
    return row.get("median_s")


def _pair(idx, kernel, scale, base, cand) -> Speedup | None:
    b = _median(idx.get((kernel, *base, scale)))
    c = _median(idx.get((kernel, *cand, scale)))
    if b is None or c is None:
        return None
    return Speedup(kernel, scale, "/".join(base), "/".join(cand), b, c)


def kernels_and_scales(cases: list[dict]) -> tuple[list[str], list[str]]:
    kernels = list(dict.fromkeys(c["kernel"] for c in cases))
    scales = sorted({c["scale"] for c in cases}, key=lambda s: SCALES.index(s) if s in SCALES else 99)
    return kernels, scales


def speedups(cases: list[dict]) -> dict[str, list[Speedup]]:
    """``{"naive_to_optimised": [...], "peers_to_ours": [...], "cpu_to_gpu": [...]}``.

    ``naive_to_optimised``: naive/cpu -> optimised on each backend; ``peers_to_ours``: each
    peer/cpu -> optimised/cpu; ``cpu_to_gpu``: each impl's cpu -> gpu case.
    """
    idx = index(cases)
    kernels, scales = kernels_and_scales(cases)
    out: dict[str, list[Speedup]] = {"naive_to_optimised": [], "peers_to_ours": [],
                                     "cpu_to_gpu": []}
    for k in kernels:
        for s in scales:
            for be in ("cpu", "gpu"):
                sp = _pair(idx, k, s, ("naive", "cpu"), ("optimised", be))
                if sp:
                    out["naive_to_optimised"].append(sp)
            for peer in PEERS:
                sp = _pair(idx, k, s, (peer, "cpu"), ("optimised", "cpu"))
                if sp:
                    out["peers_to_ours"].append(sp)
            for impl in IMPLS:
                sp = _pair(idx, k, s, (impl, "cpu"), (impl, "gpu"))
                if sp:
                    out["cpu_to_gpu"].append(sp)
    return out


def row_speedups(row: dict, idx: dict) -> dict[str, float | None]:
    """For one row: ``vs_naive`` (naive/cpu time / this time), ``ours_vs_this`` (peer rows:
    this time / optimised/cpu time, i.e. how much faster ours is) and ``gpu_vs_cpu`` (gpu rows:
    the same impl's cpu time / this time)."""
    me = _median(row)
    k, impl, be, s = row["kernel"], row["impl"], row["backend"], row["scale"]

    def other(key):
        return _median(idx.get(key))

    def ratio(num, den):
        return None if num is None or den is None or den <= 0 else num / den

    return {
        "vs_naive": None if impl == "naive" else ratio(other((k, "naive", "cpu", s)), me),
        "ours_vs_this": ratio(me, other((k, "optimised", "cpu", s))) if impl in PEERS else None,
        "gpu_vs_cpu": ratio(other((k, impl, "cpu", s)), me) if be == "gpu" else None,
    }
