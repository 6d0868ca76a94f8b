"""Results JSON -> ``README.md`` (machine and versions first, then speedup tables, verdicts,
skipped cases) and PNG plots under ``plots/``."""

from __future__ import annotations

import os
from pathlib import Path

from recsys_fast.errors import RecsysFastError, format_bytes
from recsys_fast.harness.bench import _fmt_time, _fmt_x, verdict_text
from recsys_fast.harness.compare import kernels_and_scales, speedups
from recsys_fast.harness.plots import plot_speedups, plot_times
from recsys_fast.harness.results import atomic_write_text, latest_results, load_results


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out + [""]


def _machine_lines(data: dict, source: str) -> list[str]:
    m, sw = data["machine"], data["software"]
    gpu = m.get("gpu") or {}
    if gpu.get("gpu"):
        gpu_text = (f"{gpu['gpu']}, {format_bytes(gpu.get('memory_bytes', 0))}, driver "
                    f"{gpu.get('driver_version')}, CUDA runtime {gpu.get('runtime_version')}")
    else:
        gpu_text = f"none ({gpu.get('reason', 'not recorded')})"
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture') or '?'}, "
        f"{b.get('num_threads')} threads)" for b in data.get("blas", [])) or "not recorded"
    libs = ", ".join(f"{k} {v}" for k, v in sw.items() if k not in ("implementation",))
    peak = data["gemm_peak"]
    peak_text = ", ".join(f"{k.removesuffix('_gflops').replace('_', ' ')} {v:.1f} GFLOP/s"
                          for k, v in peak.items() if k.endswith("_gflops"))
    git = data.get("git") or {}
    commit = (f"`{git['commit'][:12]}`" + (" (uncommitted changes)" if git.get("dirty") else "")
              ) if git.get("commit") else "unknown"
    s = data.get("settings", {})
    lines = [
        f"- **Date:** {data['created']}  ",
        f"- **Machine:** {m.get('cpu_model')}, {m.get('cores_logical')} logical cores "
        f"({m.get('cores_physical')} physical), {format_bytes(m.get('ram_bytes', 0))} RAM, "
        f"{m.get('platform')}",
        f"- **GPU:** {gpu_text}",
        f"- **Software:** {libs}",
        f"- **BLAS:** {blas}" + (f"; env {data['thread_env']}" if data.get("thread_env") else ""),
        f"- **GEMM peak (same run, numpy matmul {peak.get('n')}², median of "
        f"{peak.get('rounds')}):** {peak_text}",
        f"- **Commit:** {commit}",
        f"- **Settings:** repeat {s.get('repeat')}, warm-up {s.get('warmup')}, max "
        f"{s.get('max_time')} s per case, quick={s.get('quick')}, memory budget "
        f"{format_bytes(s.get('memory_budget_bytes') or 0)}",
    ]
    for sc, text in (data.get("data_sources") or {}).items():
        lines.append(f"- **Data `{sc}`:** {text}")
    lines.append(f"- **Raw results:** `{source}`")
    runs = data.get("runs") or []
    if len(runs) > 1:  # merged runs: each one's own settings and GEMM peak
        lines.append("- **Runs merged here** (the lines above are the newest run's):")
        for r in runs:
            gp = r["gemm_peak"]
            peak = ", ".join(f"{k.removesuffix('_gflops').replace('_', ' ')} {v:.1f}"
                             for k, v in gp.items() if k.endswith("_gflops"))
            commit = (r["commit"] or "unknown")[:12] + (" (dirty)" if r["dirty"] else "")
            lines.append(f"  - `{Path(r['source']).name}`: {r['created']}, scales "
                         f"{', '.join(r['scales'])}, repeat {r['settings'].get('repeat')}, "
                         f"commit `{commit}`, GEMM peak GFLOP/s: {peak}")
    return lines + [""]


def _verdict(row: dict | None) -> str:
    return "-" if row is None else verdict_text(row)


def _section(data: dict, source: str, plots: list[tuple[str, str]]) -> list[str]:
    cases = data["cases"]
    idx = {(c["kernel"], c["impl"], c["backend"], c["scale"]): c for c in cases}
    sp = speedups(cases)
    lines = [f"## {data['machine_id']} — {data['created'][:10]}", ""]
    lines += _machine_lines(data, source)
    lines += ["### Naive → optimised", ""]
    rows = [[s.kernel, s.scale, s.candidate.split("/")[1], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), f"**{_fmt_x(s.factor)}**",
             _verdict(idx.get((s.kernel, "optimised", s.candidate.split("/")[1], s.scale)))]
            for s in sp["naive_to_optimised"]]
    lines += _table(["kernel", "scale", "backend", "naive", "optimised", "speedup", "verdict"],
                    rows) if rows else ["No kernel ran both naive and optimised.", ""]
    lines += ["### Ours → peers", ""]
    rows = [[s.kernel, s.scale, s.baseline.split("/")[0], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), f"**{_fmt_x(s.factor)}**",
             _verdict(idx.get((s.kernel, s.baseline.split("/")[0], "cpu", s.scale)))]
            for s in sp["peers_to_ours"]]
    lines += _table(["kernel", "scale", "peer", "peer time", "ours (cpu)", "ours faster by",
                     "peer verdict"], rows) if rows else ["No peer comparison ran.", ""]
    lines += ["### CPU → GPU", ""]
    rows = [[s.kernel, s.scale, s.baseline.split("/")[0], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), f"**{_fmt_x(s.factor)}**"] for s in sp["cpu_to_gpu"]]
    lines += _table(["kernel", "scale", "impl", "cpu", "gpu", "speedup"], rows) if rows else [
        "No GPU case ran on this machine.", ""]
    lines += ["### All cases", ""]
    rows = []
    for c in cases:
        if c["status"] != "ok":
            continue
        extra = c.get("extra") or {}
        notes = [f"{extra['gflops']:.1f} GFLOP/s"] if "gflops" in extra else []
        if "examples_per_s" in extra:
            notes.append(f"{extra['examples_per_s']:.3g} examples/s")
        if "strategy" in extra:
            notes.append(f"strategy {extra['strategy']}")
        mem = c.get("peak_rss_delta_bytes")
        rows.append([c["kernel"], c["impl"], c["backend"], c["scale"], _fmt_time(c["median_s"]),
                     _fmt_time(c.get("iqr_s")), c.get("rounds"),
                     "-" if mem is None else format_bytes(mem), _verdict(c), ", ".join(notes)])
    lines += _table(["kernel", "impl", "backend", "scale", "median", "IQR", "rounds",
                     "peak mem (+RSS)", "verdict", "notes"], rows)
    bad = [c for c in cases if c["status"] != "ok"]
    if bad:
        lines += ["### Skipped and failed cases", ""]
        lines += _table(["kernel", "impl", "backend", "scale", "status", "reason"],
                        [[c["kernel"], c["impl"], c["backend"], c["scale"], c["status"],
                          c.get("skipped_reason") or c.get("error") or ""] for c in bad])
    if plots:
        lines += ["### Plots", ""]
        lines += [f"![{title}]({rel})" for title, rel in plots] + [""]
    return lines


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return path.name


def merge_by_machine(docs: list[tuple[Path, dict]]) -> list[tuple[list[Path], dict]]:
    """One document per machine: runs at different scales (e.g. ``--scale 100k,1m`` then
    ``--scale 10m``) become one table and one time-vs-scale plot. Files are taken oldest first;
    a later measurement of the same case replaces an earlier one, and the machine, software and
    GEMM-peak sections come from the newest file."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for path, data in docs:
        groups.setdefault(data["machine_id"], []).append((path, data))
    merged = []
    for items in groups.values():
        items.sort(key=lambda pd_: pd_[1]["created"])
        cases: dict[tuple, dict] = {}
        for _, data in items:
            for c in data["cases"]:
                cases[(c["kernel"], c["impl"], c["backend"], c["scale"])] = c
        newest = dict(items[-1][1])
        newest["cases"] = list(cases.values())
        sources = {}
        for _, data in items:
            sources.update(data.get("data_sources") or {})
        newest["data_sources"] = sources
        newest["runs"] = [
            {"source": p, "created": d["created"], "commit": (d.get("git") or {}).get("commit"),
             "dirty": (d.get("git") or {}).get("dirty"), "gemm_peak": d["gemm_peak"],
             "settings": d.get("settings", {}),
             "scales": sorted({c["scale"] for c in d["cases"]})}
            for p, d in items
        ]
        merged.append(([p for p, _ in items], newest))
    return merged


def write_report(paths: list[str | os.PathLike], out_dir: str | os.PathLike = "results",
                 plots: bool = True) -> Path:
    """Write ``<out_dir>/README.md`` (and ``<out_dir>/plots/*.png``) from results files.

    A machine's plots from earlier renders (which the new README no longer links) are removed.
    With no ``paths``, the newest results file of each machine folder under ``out_dir`` is used.

    Raises
    ------
    DataFormatError
        A results file is malformed or foreign (the message names it).
    RecsysFastError
        No results file was given or found.
    """
    out = Path(out_dir)
    paths = [Path(p) for p in paths] or latest_results(out)
    if not paths:
        raise RecsysFastError(f"no results files given and none found under {str(out)!r}; "
                              "run `recsys-fast bench` first")
    docs = merge_by_machine([(p, load_results(p)) for p in paths])  # validate all first
    lines = ["# recsys_fast benchmark results", "",
             "Naive course implementations vs the optimised kernels (and peer libraries), timed "
             "side by side by `recsys-fast bench` and rendered by `recsys-fast report`. Every "
             "optimised result was checked against its reference before it was timed (verdict "
             "column). Speedups are ratios of medians; > 1 means ours is faster.", ""]
    for path, data in docs:
        source = ", ".join(_relative(p, out) for p in path)
        path = path[-1]
        made: list[tuple[str, str]] = []
        if plots:
            stem = f"{data['machine_id']}_{path.stem}"
            kernels, _ = kernels_and_scales(data["cases"])
            for k in kernels:
                p = plot_times(data, k, out / "plots" / f"{stem}_{k}.png")
                if p:
                    made.append((f"{k}: time vs scale", f"plots/{p.name}"))
            p = plot_speedups(data, out / "plots" / f"{stem}_speedups.png")
            if p:
                made.append(("speedups", f"plots/{p.name}"))
            # plots of this machine's earlier renders are superseded: the report links these
            keep = {Path(rel).name for _, rel in made}
            for old in (out / "plots").glob(f"{data['machine_id']}_*.png"):
                if old.name not in keep:
                    old.unlink()
        lines += _section(data, source, made)
    return atomic_write_text(out / "README.md", "\n".join(lines) + "\n")
