"""Results JSON -> ``README.md`` (machine and versions first, then speedup tables with 95 %
intervals, verdicts, roofline figures, skipped cases) and PNG plots under ``plots/``.

Several files of one machine merge into one section **by group**: each (kernel, scale) comes
whole from the newest run that measured it, every row says which run, and ratios are computed
only within a run. The report writes only what it owns: ``README.md`` when absent or written by
an earlier report (:data:`MARKER`), plots whose names are built from checked plain names, and it
deletes only plots its own manifest (``plots/.recsys-fast-plots.json``) lists for a machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from recsys_fast.errors import OutputDirError, RecsysFastError, format_bytes
from recsys_fast.harness.report.html import render_page
from recsys_fast.harness.report.html import written_by_report as _written_by_report
from recsys_fast.harness.report.plots import plot_small_multiples, plot_speedups, plot_times
from recsys_fast.harness.report.summary import HEADER as SUMMARY_HEADER
from recsys_fast.harness.report.summary import QualityCells, summary_rows
from recsys_fast.harness.run.bench import _fmt_time, verdict_text
from recsys_fast.harness.stats.compare import (
    fmt_ratio,
    kernels_and_scales,
    other_function,
    speedups,
)
from recsys_fast.results_store import (
    atomic_write_text,
    check_name,
    latest_results,
    load_results,
)

MARKER = "<!-- written by `recsys-fast report`; regenerate, do not edit -->"
LEGACY_TITLE = "# recsys_fast benchmark results"
MANIFEST = ".recsys-fast-plots.json"


class NotOursError(RecsysFastError):
    """A file the report would replace was not written by the report."""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out + [""]


def _peak_text(peak: dict) -> str:
    return ", ".join(f"{k.removesuffix('_gflops').replace('_', ' ')} {v:.1f} GFLOP/s"
                     for k, v in peak.items() if k.endswith("_gflops"))


def _bw_text(bw: dict | None) -> str:
    bw = bw or {}
    parts = [f"{k.removesuffix('_gbytes_per_s').replace('_', ' ')} {v:.1f} GB/s"
             for k, v in bw.items() if k.endswith("_gbytes_per_s")]
    if not parts:
        return "not measured"
    extra = (f" ({bw.get('method')}, arrays of {format_bytes(bw['array_bytes'])}, last-level "
             f"cache {format_bytes(bw['llc_bytes'])})") if bw.get("array_bytes") else ""
    sc = bw.get("scatter") or {}
    if sc.get("cpu_scatter_l2_updates_per_s"):
        extra += (f"; scatter-add {sc['cpu_scatter_l2_updates_per_s'] / 1e9:.3g} G updates/s "
                  f"into {format_bytes(sc['l2_accumulator_bytes'])} per thread, "
                  f"{sc['cpu_scatter_dram_updates_per_s'] / 1e9:.3g} G into "
                  f"{format_bytes(sc['dram_accumulator_bytes'])} ({sc['threads']} threads)")
    return ", ".join(parts) + extra


def _commit(git: dict | None) -> str:
    git = git or {}
    if not git.get("commit"):
        return "unknown"
    text = f"`{git['commit'][:12]}`"
    if git.get("dirty"):
        text += f" **with uncommitted changes** (diff sha256 {str(git.get('diff_sha256'))[:12]})"
    return text


def _gpu_text(data: dict) -> str:
    gpu = (data.get("machine") or {}).get("gpu") or {}
    return str(gpu["gpu"]) if gpu.get("gpu") else "none"


def _machine_lines(data: dict) -> list[str]:
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
    lines = [
        f"- **Date:** {data['created']} (newest run)  ",
        f"- **Machine:** {m.get('cpu_model')}, {m.get('cores_logical')} logical cores "
        f"({m.get('cores_physical')} physical), {format_bytes(m.get('ram_bytes', 0))} RAM, "
        f"{m.get('platform')}",
        f"- **GPU:** {gpu_text}",
        f"- **Software:** {libs}",
        f"- **BLAS:** {blas}" + (f"; env {data['thread_env']}" if data.get("thread_env") else ""),
        f"- **GEMM peak (newest run, numpy matmul):** {_peak_text(data['gemm_peak'])}",
        f"- **Memory bandwidth (newest run):** {_bw_text(data.get('bandwidth'))}",
    ]
    for sc, text in (data.get("data_sources") or {}).items():
        lines.append(f"- **Data `{sc}`:** {text}")
    lines.append("- **Runs** (each table row names its run; ratios never cross runs):")
    for r in data["runs"]:
        s = r["settings"]
        lines.append(
            f"  - `{r['label']}` = `{r['source']}`: {r['created']}, scales "
            f"{', '.join(r['scales'])}, commit {_commit(r['git'])}, repeat {s.get('repeat')} "
            f"(at least {s.get('min_rounds', '?')}, at most {s.get('max_time')} s per case), "
            f"{'isolated workers, interleaved rounds' if s.get('isolated') else 'one process'}"
            f"; GEMM peak {_peak_text(r['gemm_peak'])}; memory bandwidth {_bw_text(r['bandwidth'])}")
    return lines + [""]


def _verdict(row: dict | None) -> str:
    return "-" if row is None else verdict_text(row)


def _roofline(c: dict, run: dict) -> str:
    """Achieved throughput next to the same run's ceilings, and the floor it implies."""
    x = c.get("extra") or {}
    parts, floor = [], 0.0
    peak = run["gemm_peak"].get(f"{c['backend']}_{x.get('flops_dtype', 'float64')}_gflops")
    if "gflops" in x:
        pct = f" ({100 * x['gflops'] / peak:.0f} % of GEMM peak)" if peak else ""
        parts.append(f"{x['gflops']:.3g} GFLOP/s{pct}")
        if peak:
            floor = max(floor, x["flops"] / (peak * 1e9))
    bw = (run["bandwidth"] or {}).get(f"{c['backend']}_triad_gbytes_per_s")
    if "gbytes_per_s" in x:
        pct = f" ({100 * x['gbytes_per_s'] / bw:.0f} % of bandwidth)" if bw else ""
        parts.append(f"{x['gbytes_per_s']:.3g} GB/s{pct}")
        if bw:
            floor = max(floor, x["bytes"] / (bw * 1e9))
    scatter = ((run["bandwidth"] or {}).get("scatter") or {}) if c["backend"] == "cpu" else {}
    l2, dram = (scatter.get(f"cpu_scatter_{w}_updates_per_s") or 0 for w in ("l2", "dram"))
    if x.get("roof") == "scatter" and "flops" in x and l2 > 0 and dram > 0:
        madds = x["flops"] / 2 / c["median_s"]
        parts.append(f"{madds / 1e9:.3g} G multiply-adds/s ({100 * madds / l2:.0f} % of the "
                     f"in-cache scatter-add rate, {100 * madds / dram:.0f} % of the "
                     "out-of-cache one)")
    if floor > 0:
        parts.append(f"roofline floor {_fmt_time(floor)}: reached {100 * floor / c['median_s']:.2g} %")
    if "dense_equiv_gflops" in x:
        parts.append(f"dense-equivalent {x['dense_equiv_gflops']:.3g} GFLOP/s (not achieved)")
    if "examples_per_s" in x:
        parts.append(f"{x['examples_per_s']:.3g} examples/s")
    if "strategy" in x:
        parts.append(f"strategy {x['strategy']}")
    return ", ".join(parts)


def _dask_ratio(sp) -> str:
    """:func:`fmt_ratio`, plus ``(dask 1.28x slower)`` where dask is slower (and, with an
    interval, significantly so): a ratio below 1 is not read as a speedup."""
    text = fmt_ratio(sp, bold=True)
    if sp.factor < 1 and (sp.ci is None or sp.ci.significant):
        text += f" (dask {1 / sp.factor:.3g}x slower)"
    return text


def _cluster_text(row: dict | None) -> str:
    """Where a dask case ran, from its ``extra`` (see ``impls_dask.Cluster.extra``):
    ``LocalCluster, 2 workers x 1 thread`` or ``tcp://host:8786, 4 workers x 2/2/4/4 threads``."""
    x = (row or {}).get("extra") or {}
    if not x.get("scheduler"):
        return "-"
    text = str(x["scheduler"])
    n, threads = x.get("n_workers"), list(x.get("threads_per_worker") or [])
    if n is None:
        return text
    if len(set(threads)) == 1:
        per = f"{threads[0]} thread{'' if threads[0] == 1 else 's'}"
    else:
        per = f"{'/'.join(map(str, threads)) or '?'} threads"
    return f"{text}, {n} worker{'' if n == 1 else 's'} x {per}"


def _section(data: dict, plots: list[tuple[str, str]]) -> list[str]:
    cases = data["cases"]
    runs = {r["label"]: r for r in data["runs"]}
    idx = {(c["kernel"], c["impl"], c["backend"], c["scale"]): c for c in cases}
    sp = speedups(cases)
    lines = [f"## {data['machine_id']} — {data['created'][:10]}", ""]
    lines += _machine_lines(data)
    lines += ["Ratios: median over median, with the 95 % bootstrap interval of the paired "
              "interleaved rounds; `~ no difference` marks an interval that contains 1.", ""]
    lines += ["### Naive → optimised", ""]
    rows = [[s.kernel, s.scale, s.candidate.split("/")[1], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), fmt_ratio(s, bold=True),
             _verdict(idx.get((s.kernel, "optimised", s.candidate.split("/")[1], s.scale))),
             s.run or "-"] for s in sp["naive_to_optimised"]]
    lines += _table(["kernel", "scale", "backend", "naive", "optimised", "speedup [95 % CI]",
                     "verdict", "run"], rows) if rows else [
        "No kernel ran both naive and optimised in one run.", ""]
    lines += ["### Ours → peers", ""]
    rows = [[s.kernel, s.scale, s.baseline.split("/")[0], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), fmt_ratio(s, bold=True),
             _verdict(idx.get((s.kernel, s.baseline.split("/")[0], "cpu", s.scale))),
             s.run or "-"] for s in sp["peers_to_ours"]]
    lines += _table(["kernel", "scale", "peer", "peer time", "ours (cpu)",
                     "ours faster by [95 % CI]", "peer verdict", "run"], rows) if rows else [
        "No peer comparison ran.", ""]
    unlike = sorted({(c["kernel"], c["impl"]) for c in cases if other_function(c)})
    if unlike:
        lines += ["Not timed against ours (another function, compared on quality only): "
                  + ", ".join(f"`{k}` {i}" for k, i in unlike) + ".", ""]
    lines += ["### CPU → GPU", ""]
    rows = [[s.kernel, s.scale, s.baseline.split("/")[0], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), fmt_ratio(s, bold=True), s.run or "-"]
            for s in sp["cpu_to_gpu"]]
    lines += _table(["kernel", "scale", "impl", "cpu", "gpu", "speedup [95 % CI]", "run"],
                    rows) if rows else ["No GPU case ran on this machine.", ""]
    lines += ["### CPU → dask", "",
              "Speedup = cpu median / dask median, both of one run: > 1 the dask case is "
              "faster, < 1 it is slower.", ""]
    rows = [[s.kernel, s.scale, s.baseline.split("/")[0], _fmt_time(s.baseline_s),
             _fmt_time(s.candidate_s), _dask_ratio(s),
             _cluster_text(idx.get((s.kernel, s.candidate.split("/")[0], "dask", s.scale))),
             s.run or "-"] for s in sp["cpu_to_dask"]]
    lines += _table(["kernel", "scale", "impl", "cpu", "dask",
                     "dask vs cpu: speedup [95 % CI]", "cluster", "run"],
                    rows) if rows else ["No dask case ran beside its cpu case.", ""]
    lines += ["### All cases", "",
              "Peak memory: the high-water mark above the post-setup baseline during the "
              "case's first warm-up call (the one after the checked call), after a heap trim (see `bench/README.md`). Throughput is "
              "the floating-point work actually done (nnz-based for sparse kernels) and the "
              "bytes a call must move, against the same run's GEMM peak and triad bandwidth; "
              "the roofline floor is max(flops / peak, bytes / bandwidth). Sparse products "
              "(`cosine_topk`) accumulate each pair's product at a random place, so their "
              "multiply-adds are also set against the run's scatter-add rates: every thread "
              "adding into its own accumulator, one half the L2 size and one out of cache "
              "(`recsys_fast.harness.run.machine.scatter_rate`).", ""]
    rows = []
    for c in cases:
        if c["status"] != "ok":
            continue
        mem = c.get("peak_rss_delta_bytes")
        run = runs.get(c.get("_run")) or data["runs"][-1]
        rows.append([c["kernel"], c["impl"], c["backend"], c["scale"], _fmt_time(c["median_s"]),
                     _fmt_time(c.get("iqr_s")), c.get("rounds"),
                     "-" if mem is None else format_bytes(mem), _verdict(c), _roofline(c, run),
                     c.get("_run") or "-"])
    lines += _table(["kernel", "impl", "backend", "scale", "median", "IQR", "rounds",
                     "peak mem", "verdict", "throughput / notes", "run"], rows)
    bad = [c for c in cases if c["status"] != "ok"]
    if bad:
        lines += ["### Skipped and failed cases", ""]
        lines += _table(["kernel", "impl", "backend", "scale", "status", "reason", "run"],
                        [[c["kernel"], c["impl"], c["backend"], c["scale"], c["status"],
                          c.get("skipped_reason") or c.get("error") or "", c.get("_run") or "-"]
                         for c in bad])
    if plots:
        lines += ["### Plots", ""]
        lines += [f"![{title}]({rel})" for title, rel in plots] + [""]
    return lines


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return path.name


def merge_by_machine(docs: list[tuple[Path, dict]], out: Path | None = None
                     ) -> list[tuple[list[Path], dict]]:
    """One document per machine. Each (kernel, scale) group comes whole from the newest run that
    measured it (so its ratios are same-run); its rows carry ``"_run"`` (a short label, listed
    in ``"runs"`` with the file, time, commit and that run's ceilings). The machine and software
    lines come from the newest file."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for path, data in docs:
        groups.setdefault(data["machine_id"], []).append((path, data))
    merged = []
    for items in groups.values():
        items.sort(key=lambda pd_: (pd_[1]["created"], pd_[0].name))
        chosen: dict[tuple[str, str], tuple[str, list[dict]]] = {}
        runs = []
        for n, (path, data) in enumerate(items, 1):
            label = f"R{n}"
            by_group: dict[tuple[str, str], list[dict]] = {}
            for c in data["cases"]:
                by_group.setdefault((c["kernel"], c["scale"]), []).append({**c, "_run": label})
            for g, rows in by_group.items():
                if any(r["status"] != "skipped" for r in rows) or g not in chosen:
                    chosen[g] = (label, rows)
            runs.append({"label": label, "path": path,
                         "source": _relative(path, out) if out else path.name,
                         "created": data["created"], "git": data.get("git"),
                         "gemm_peak": data["gemm_peak"], "bandwidth": data.get("bandwidth"),
                         "settings": data.get("settings", {}),
                         "scales": kernels_and_scales(data["cases"])[1]})
        used = {label for label, _ in chosen.values()}
        newest = dict(items[-1][1])
        newest["cases"] = [r for _, rows in chosen.values() for r in rows]
        newest["runs"] = [r for r in runs if r["label"] in used]
        shown = {(label, sc) for (_, sc), (label, _) in chosen.items()}
        newest["data_sources"] = data_by_scale(
            [(f"R{n}", data) for n, (_, data) in enumerate(items, 1)], shown)
        merged.append(([r["path"] for r in newest["runs"]], newest))
    return merged


def data_by_scale(labelled: list[tuple[str, dict]], shown: set | None = None) -> dict[str, str]:
    """Per scale, the data the labelled runs read (only the (run, scale) pairs in ``shown``
    when given: the runs whose rows the report shows there): one text when they agree, else
    each text with its runs and a warning (those rows were measured on different data). Runs
    agree by their data's digest (``data_provenance``: the same bytes or generator settings,
    wherever the files were), or by the description where no run has a digest; runs without
    one beside a single digest are listed with a note, not flagged as different."""
    groups: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for label, data in labelled:
        digests = {sc: (p or {}).get("digest")
                   for sc, p in (data.get("data_provenance") or {}).items()}
        for sc, text in (data.get("data_sources") or {}).items():
            if shown is None or (label, sc) in shown:
                key = digests.get(sc) or f"text:{text}"
                groups.setdefault(sc, {}).setdefault(key, (text, []))[1].append(label)
    out = {}
    for sc, by_key in groups.items():
        listed = "; ".join(f"{', '.join(labels)}: {text}" for text, labels in by_key.values())
        digested = [k for k in by_key if not k.startswith("text:")]
        if len(by_key) == 1:
            out[sc] = next(iter(by_key.values()))[0]
        elif len(digested) == 1:  # the others recorded no digest: not known to differ
            out[sc] = (listed + " (the runs without a data digest, from before it was "
                       "recorded, cannot be checked against it)")
        else:
            out[sc] = "**the runs read different data:** " + listed
    return out


def _check_readme(path: Path, force: bool) -> None:
    if not path.exists() or force:
        return
    try:
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
    except OSError as exc:
        raise OutputDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    if first not in (MARKER, LEGACY_TITLE):
        raise NotOursError(f"{path} exists and was not written by `recsys-fast report`; "
                           "choose another --out (or --force to replace it)")


def _load_manifest(plots_dir: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((plots_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: [f for f in v if isinstance(f, str) and "/" not in f and f.endswith(".png")]
            for k, v in data.items() if isinstance(v, list)}


def write_report(paths: list[str | os.PathLike], out_dir: str | os.PathLike = "results",
                 plots: bool = True, force: bool = False, html: bool = False,
                 extra_sections: Callable[[Path], list[str]] | None = None,
                 quality_cells: Callable[[Path], QualityCells] | None = None) -> Path:
    """Write ``<out_dir>/README.md`` (and ``<out_dir>/plots/*.png``) from results files.

    The page opens with the summary (:mod:`.summary`): per machine, one table kernel x scale
    and one small-multiples figure; the long tables follow.

    ``extra_sections(out)``: more Markdown lines after the speed sections (the CLI passes
    :func:`recsys_fast.quality.report.report_sections`, the quality tables).
    ``quality_cells(out)``: the summary's quality column (the CLI passes
    :func:`recsys_fast.quality.report.summary_cells`).

    ``html`` also writes ``<out_dir>/index.html``: the same text and tables, plots inlined, no
    network (:mod:`recsys_fast.harness.report.html`).

    Plots are named ``<machine>_<kernel>.png``; a machine's plots that an earlier render listed
    in the manifest and this one no longer makes are removed (nothing else is ever deleted).
    With no ``paths``, the newest results file of each machine folder under ``out_dir``.

    Raises
    ------
    DataFormatError
        A results file is malformed or foreign (the message names it).
    NotOursError
        ``README.md`` (or, with ``html``, ``index.html``) exists and was not written by the
        report (``force`` replaces it).
    OutputDirError
        ``out_dir`` cannot be written.
    RecsysFastError
        No results file was given or found.
    """
    out = Path(out_dir)
    paths = [Path(p) for p in paths] or latest_results(out)
    if not paths:
        raise RecsysFastError(f"no results files given and none found under {str(out)!r}; "
                              "run `recsys-fast bench` first")
    docs = merge_by_machine([(p, load_results(p)) for p in paths], out)  # validate all first
    readme = out / "README.md"
    _check_readme(readme, force)
    page = out / "index.html"
    if html and not force and not _written_by_report(page):
        raise NotOursError(f"{page} exists and was not written by `recsys-fast report --html`; "
                           "choose another --out (or --force to replace it)")
    lines = [MARKER, "", "# recsys_fast benchmark results", "",
             "Naive course implementations vs the optimised kernels (and peer libraries), timed "
             "side by side by `recsys-fast bench` and rendered by `recsys-fast report`. Every "
             "optimised result was checked against its reference before it was timed (verdict "
             "column). Speedups are ratios of medians with 95 % intervals; > 1 means the "
             "second named is faster.", ""]
    plots_dir = out / "plots"
    cells = quality_cells(out) if quality_cells else None
    try:
        manifest = _load_manifest(plots_dir) if plots else {}
        lines += ["## At a glance", ""]
        for _paths, data in docs:
            machine = check_name(data["machine_id"], "machine_id")
            lines += [f"**{machine}** ({data['machine'].get('cpu_model', '?')}; GPU: "
                      f"{_gpu_text(data)}); same-run ratios of medians, 95 % intervals; "
                      "> 1: ours faster.", ""]
            rows = summary_rows(data, cells)
            lines += _table(SUMMARY_HEADER, rows) if rows else ["No ratio to show.", ""]
            if plots:
                p = plot_small_multiples(data, plots_dir / f"{machine}_summary.png")
                if p:
                    lines += [f"![{machine}: speedups at a glance](plots/{p.name})", ""]
        for _paths, data in docs:
            machine = check_name(data["machine_id"], "machine_id")
            made: list[tuple[str, str]] = []
            if plots:
                kernels, _ = kernels_and_scales(data["cases"])
                for k in kernels:
                    p = plot_times(data, k, plots_dir / f"{machine}_{check_name(k, 'kernel')}.png")
                    if p:
                        made.append((f"{k}: time vs scale", f"plots/{p.name}"))
                p = plot_speedups(data, plots_dir / f"{machine}_speedups.png")
                if p:
                    made.append(("speedups", f"plots/{p.name}"))
                keep = {Path(rel).name for _, rel in made} | {f"{machine}_summary.png"}
                for old in manifest.get(machine, []):
                    if old not in keep:
                        (plots_dir / old).unlink(missing_ok=True)
                manifest[machine] = sorted(keep)
            lines += _section(data, made)
        lines += extra_sections(out) if extra_sections else []
        if plots:
            plots_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(plots_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if html:
            atomic_write_text(page, render_page(lines, out))
        return atomic_write_text(readme, "\n".join(lines) + "\n")
    except OSError as exc:
        raise OutputDirError(f"cannot write the report under {str(out)!r}: "
                             f"{exc.strerror or exc}") from None
