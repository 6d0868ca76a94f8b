"""matplotlib PNGs of a results document: time vs scale per kernel, speedup bars.

Uses the object-oriented API (``Figure``) so no GUI backend or pyplot state is involved.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from recsys_fast.harness.cases.adapter import styles
from recsys_fast.harness.cases.registry import SCALES
from recsys_fast.harness.run.context import scale_spec
from recsys_fast.harness.stats.compare import Speedup, impl_order, kernels_and_scales, speedups


def _ratings(data: dict, scale: str) -> float:
    shape = (data.get("scale_shapes") or {}).get(scale)
    if shape:
        return float(shape["n_ratings"])
    return float(scale_spec(scale).n_ratings) if scale in SCALES else float("nan")


def _seconds(y: float) -> str:
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if y >= f:
            return f"{y / f:.3g} {unit}"
    return f"{y:g} s"


def plot_times(data: dict, kernel: str, path: Path) -> Path | None:
    """Log-log median time vs number of ratings, one line per impl/backend (error bars = IQR)."""
    rows = [c for c in data["cases"] if c["kernel"] == kernel and c["status"] == "ok"]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    order = impl_order(rows)
    style = styles(order)
    series = sorted({(c["impl"], c["backend"]) for c in rows},
                    key=lambda ib: (order.index(ib[0]), ib[1]))
    crossed = False
    for impl, be in series:
        pts = sorted(((_ratings(data, c["scale"]), c) for c in rows
                      if c["impl"] == impl and c["backend"] == be), key=lambda p: p[0])
        marker, line = style[impl]
        bars = ax.errorbar([p[0] for p in pts], [p[1]["median_s"] for p in pts],
                           yerr=[p[1].get("iqr_s") or 0 for p in pts], marker=marker,
                           linestyle="none", capsize=3, label=f"{impl} ({be})")
        color = bars[0].get_color()
        for (x0, a), (x1, b) in zip(pts, pts[1:], strict=False):
            same = a.get("_run") == b.get("_run")
            crossed |= not same
            ax.plot([x0, x1], [a["median_s"], b["median_s"]], color=color,
                    linestyle=line if same else ":", linewidth=1.2 if same else 0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    scales = sorted({c["scale"] for c in rows}, key=lambda sc: _ratings(data, sc))
    ax.set_xticks([_ratings(data, sc) for sc in scales],
                  [f"{sc}\n{_ratings(data, sc):,.0f}" for sc in scales], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _seconds(y)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if len(scales) == 1:
        x = _ratings(data, scales[0])
        ax.set_xlim(x / 2, x * 2)
    ax.set_xlabel("scale (ratings in the data set)")
    ax.set_ylabel("median time per call [s]")
    title = f"{kernel}: time vs scale ({data['machine_id']})"
    if crossed:
        title += "\ndotted segments join points from different runs"
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_speedups(data: dict, path: Path) -> Path | None:
    """Bars of naive->optimised, peer->ours, cpu->gpu and cpu->dask speedups per kernel and
    scale (log axis; a bar below the 1x line: the side after ``->`` is slower)."""
    sp = speedups(data["cases"])
    bars = [(f"{s.kernel}\n{s.scale}", s.factor, f"naive -> ours ({s.candidate.split('/')[1]})")
            for s in sp["naive_to_optimised"]]
    bars += [(f"{s.kernel}\n{s.scale}", s.factor, f"{s.baseline.split('/')[0]} -> ours")
             for s in sp["peers_to_ours"]]
    bars += [(f"{s.kernel}\n{s.scale}", s.factor, f"{s.baseline.split('/')[0]} cpu -> gpu")
             for s in sp["cpu_to_gpu"]]
    bars += [(f"{s.kernel}\n{s.scale}", s.factor, f"{s.baseline.split('/')[0]} cpu -> dask")
             for s in sp["cpu_to_dask"]]
    if not bars:
        return None
    groups = list(dict.fromkeys(b[0] for b in bars))
    kinds = list(dict.fromkeys(b[2] for b in bars))
    width = 0.8 / len(kinds)
    fig = Figure(figsize=(max(6.4, 0.9 * len(groups) + 2), 4.6), layout="constrained")
    ax = fig.add_subplot()
    for n, kind in enumerate(kinds):
        xs, ys = [], []
        for g, f, k in bars:
            if k == kind:
                xs.append(groups.index(g) + (n - (len(kinds) - 1) / 2) * width)
                ys.append(f)
        rects = ax.bar(xs, ys, width=width, label=kind)
        ax.bar_label(rects, labels=[f"{y:.3g}x" for y in ys], fontsize=6, rotation=90,
                     padding=2)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), groups, fontsize=7)
    ax.set_ylabel("speedup (x): > 1 = the side after -> is faster, < 1 slower")
    _kernels, scales = kernels_and_scales(data["cases"])
    ax.set_title(f"speedups ({data['machine_id']}, scales {', '.join(scales)})", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_small_multiples(data: dict, path: Path) -> Path | None:
    """One panel per kernel, scales along x: ours' speedup over the course (naive, CPU) and
    over the fastest peer, with their 95 % intervals, on a log axis with the 1x line; sized to
    read at 900 px wide."""
    sp = speedups(data["cases"])
    series: dict[str, dict[str, dict[str, Speedup]]] = {}
    for s in sp["naive_to_optimised"]:
        if s.candidate.endswith("/cpu"):
            series.setdefault(s.kernel, {}).setdefault("vs naive", {})[s.scale] = s
    for s in sp["peers_to_ours"]:
        best = series.setdefault(s.kernel, {}).setdefault("vs fastest peer", {})
        if s.scale not in best or s.factor < best[s.scale].factor:
            best[s.scale] = s
    if not series:
        return None
    kernels = list(series)
    cols = min(3, len(kernels))
    rows = -(-len(kernels) // cols)
    fig = Figure(figsize=(9.0, 2.6 * rows), dpi=100, layout="constrained")
    order = [sc for sc in SCALES if any(sc in d for k in kernels for d in series[k].values())]
    looks = {"vs naive": ("C0", "o", -0.08), "vs fastest peer": ("C1", "s", 0.08)}
    handles = {}
    for n, k in enumerate(kernels):
        ax = fig.add_subplot(rows, cols, n + 1)
        values = [1.0]
        for label, (color, marker, shift) in looks.items():
            pts = series[k].get(label, {})
            if not pts:
                continue
            got = [pts[sc] for sc in order if sc in pts]
            xs = [order.index(sc) + shift for sc in order if sc in pts]
            ys = [s.factor for s in got]
            lo = [s.factor - (s.ci.lo if s.ci else s.factor) for s in got]
            hi = [(s.ci.hi if s.ci else s.factor) - s.factor for s in got]
            values += [s.ci.lo if s.ci else s.factor for s in got]
            values += [s.ci.hi if s.ci else s.factor for s in got]
            handles[label] = ax.errorbar(xs, ys, yerr=[lo, hi], color=color, marker=marker,
                                         linestyle="-", capsize=3, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 1.25, max(values) * 1.25)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(order)), order, fontsize=8)
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(k, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.legend(list(handles.values()), [f"ours {label}" for label in handles], loc="outside "
               "lower center", ncols=2, fontsize=8)
    fig.suptitle(f"ours against the course (CPU) and the fastest peer, {data['machine_id']}: "
                 "how many times faster, 95 % intervals (< 1x: slower)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
