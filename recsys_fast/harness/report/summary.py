"""The report's first screen: one table, kernel x scale, of how much faster ours is than the
course and than the fastest peer, on the GPU and on dask; and the quality beside each ranker.

Every ratio is a same-run ratio of medians with its 95 % interval (:mod:`..stats.compare`);
"best peer" is the peer ours beats by the least (the fastest one) at that kernel and scale,
named. Quality cells come from the caller (``quality``: ``(machine, kernel, scale) -> text``),
as quality results live above this layer.
"""

from __future__ import annotations

from collections.abc import Callable

from recsys_fast.harness.stats.compare import Speedup, fmt_ratio, kernels_and_scales, speedups

QualityCells = Callable[[str, str, str], str]


def _ours(sp: Speedup) -> bool:
    return sp.candidate.split("/")[0] == "optimised"


def summary_rows(data: dict, quality: QualityCells | None = None) -> list[list[str]]:
    """One row per (kernel, scale) with at least one ratio: naive -> ours (CPU), the best peer
    -> ours, ours CPU -> GPU, ours CPU -> dask, quality."""
    sp = speedups(data["cases"])
    naive = {(s.kernel, s.scale): s for s in sp["naive_to_optimised"]
             if s.candidate.endswith("/cpu")}
    peers: dict[tuple[str, str], Speedup] = {}
    for s in sp["peers_to_ours"]:
        key = (s.kernel, s.scale)
        if key not in peers or s.factor < peers[key].factor:
            peers[key] = s
    gpu = {(s.kernel, s.scale): s for s in sp["cpu_to_gpu"] if _ours(s)}
    dask = {(s.kernel, s.scale): s for s in sp["cpu_to_dask"] if _ours(s)}
    kernels, scales = kernels_and_scales(data["cases"])
    rows = []
    for k in kernels:
        for sc in scales:
            key = (k, sc)
            if not any(key in d for d in (naive, peers, gpu, dask)):
                continue
            best = peers.get(key)
            peer = (f"{fmt_ratio(best)} vs {best.baseline.split('/')[0]}" if best else "-")
            q = quality(data["machine_id"], k, sc) if quality else ""
            rows.append([k, sc, fmt_ratio(naive.get(key)), peer, fmt_ratio(gpu.get(key)),
                         fmt_ratio(dask.get(key)), q or "-"])
    return rows


HEADER = ["kernel", "scale", "ours vs naive (CPU)", "ours vs the fastest peer",
          "ours CPU → GPU", "ours CPU → dask", "quality"]
