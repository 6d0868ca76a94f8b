"""``recsys-fast bench`` and ``recsys-fast report``.

The top-level CLI (``recsys_fast.cli``) calls :func:`add_bench_commands`; each subcommand sets
``func(args) -> int``. Bad input raises a :class:`~recsys_fast.errors.RecsysFastError` (or
``ValueError``) whose message says what is wrong; :func:`main` (``python -m recsys_fast`` runs the same through :mod:`recsys_fast.cli`)
prints it without a traceback and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from recsys_fast.errors import RecsysFastError


def _csv(text: str) -> list[str]:
    """A comma list's names; an empty list is an error (it would otherwise read as "all")."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"empty list {text!r}: give at least one name")
    return names


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _positive_float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def add_bench_commands(subparsers) -> None:
    """Add ``bench`` and ``report`` to an argparse sub-parsers object."""
    from recsys_fast.harness.cases.registry import BACKENDS, OUT_OF_CORE_SCALES, SCALES

    b = subparsers.add_parser(
        "bench", help="time naive vs optimised kernels and peers; write results JSON",
        description="Run benchmark cases and write results/<machine-id>/<timestamp>.json. "
        "With no options: every kernel at scale 100k (real MovieLens 100K if "
        "$RECSYS_FAST_SHARED/ml-100k exists, else synthetic), all implementations, "
        "backends that are usable here.")
    b.add_argument("--scale", default="100k", type=_csv,
                   help=f"comma list of scales ({', '.join(SCALES)}; out of core, dask "
                        f"only: {', '.join(OUT_OF_CORE_SCALES)}); default 100k")
    b.add_argument("--kernels", type=_csv, default=None,
                   help="comma list of kernels (default all; --list shows them)")
    b.add_argument("--impl", type=_csv, default=None,
                   help="comma list of implementations: naive, optimised or a peer "
                   "library's name (--list shows each kernel's)")
    b.add_argument("--backend", type=_csv, default=None,
                   help=f"comma list of backends ({', '.join(BACKENDS)})")
    b.add_argument("--quick", action="store_true",
                   help="fewer rounds (5, at least 3, at most ~3 s per case), smaller GEMM probe")
    b.add_argument("--repeat", type=_positive_int, default=None,
                   help="timed rounds per case (default 10)")
    b.add_argument("--max-time", type=_positive_float, default=None, metavar="SECONDS",
                   help="a case stops its rounds early once its timed rounds add up to this "
                   "and it has its minimum rounds (default 20; 3 with --quick): raise it for "
                   "slow, noisy cases whose intervals need every --repeat round")
    b.add_argument("--case-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="limit per stage of a case (setup, first call, one round); a case "
                   "that exceeds it is recorded as an error and the run goes on (default 1800)")
    b.add_argument("--resume", default=None, metavar="RUN",
                   help="finish an interrupted run (its name or its .partial.jsonl journal) "
                   "with its own selection and settings")
    b.add_argument("--in-process", action="store_true",
                   help="run cases in this process instead of one worker per kernel and scale "
                   "(debugging; a crash then ends the run)")
    b.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the dask backend's cases on this running dask cluster (sets "
                   "RECSYS_FAST_DASK_SCHEDULER for the run; default: a LocalCluster per case)")
    b.add_argument("--out", default="results", help="results folder (default results/)")
    b.add_argument("--ml100k", default=None, metavar="DIR",
                   help="folder of the real MovieLens 100K (u.data...) for scale 100k")
    b.add_argument("--shape", default="default", metavar="NAME",
                   help="synthetic laws for every in-memory scale (100k included): "
                        "popularity and activity presets of recsys_fast.data.synthetic.SHAPES "
                        "(default: each scale's own; real ML-100K at 100k when found)")
    b.add_argument("--list", action="store_true", help="list the registered cases and exit")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench)

    r = subparsers.add_parser(
        "report", help="results JSON -> results/README.md + plots/*.png",
        description="Render results files (default: the newest per machine under --out) into "
        "README.md with speedup tables and PNG plots under plots/.")
    r.add_argument("results", nargs="*", help="results JSON files")
    r.add_argument("--out", default="results", help="folder for README.md and plots/")
    r.add_argument("--no-plots", action="store_true", help="tables only")
    r.add_argument("--html", action="store_true",
                   help="also write index.html: the same tables, plots inlined, no network")
    r.add_argument("--force", action="store_true",
                   help="replace a README.md in --out that the report did not write")
    r.set_defaults(func=cmd_report)

    c = subparsers.add_parser(
        "compare", help="per-case time ratios between two results files (across runs)",
        description="Compare two results files case by case: head time / base time with a 95 %% "
        "bootstrap interval (> 1: slower in HEAD). The runs were not interleaved, so machine "
        "drift between them is not controlled: read it as context, not as a verdict.")
    c.add_argument("base", help="results JSON of the baseline run")
    c.add_argument("head", help="results JSON of the run to compare")
    c.set_defaults(func=cmd_compare)

    g = subparsers.add_parser(
        "gate", help="did HEAD make a kernel slower than BASE? interleaved, with intervals",
        description="Time the selected cases on two revisions interleaved (base, head, head, "
        "base...) in one run and fail (exit 1) when a case is significantly slower by more "
        "than --threshold; --metric instructions counts each call's CPU instructions under "
        "valgrind instead (deterministic). See bench/README.md, 'Maintainer's workflow'.")
    g.add_argument("--base", default="main", help="base revision (default main)")
    g.add_argument("--head", default="HEAD",
                   help="revision to judge (default HEAD; '.' = the working tree as it is)")
    g.add_argument("--kernels", type=_csv, default=None, help="comma list (default all)")
    g.add_argument("--impl", type=_csv, default=["optimised"],
                   help="implementations to judge (default optimised)")
    g.add_argument("--backend", type=_csv, default=["cpu"], help="backends (default cpu)")
    g.add_argument("--scale", default="100k", help="one scale (default 100k)")
    g.add_argument("--budget", type=_positive_float, default=600.0, metavar="SECONDS",
                   help="time for all rounds (default 600)")
    g.add_argument("--metric", choices=("time", "instructions"), default="time",
                   help="time: wall time, interleaved rounds with intervals; instructions: "
                   "CPU instructions of each timed call under valgrind's callgrind, "
                   "deterministic (falls back to time where valgrind is missing)")
    g.add_argument("--threshold", type=_positive_float, default=None,
                   help="slowdown that fails the gate (default 0.15 = 15%% of time when "
                   "significant; 0.02 = 2%% more instructions with --metric instructions)")
    g.add_argument("--min-rounds", type=_positive_int, default=6)
    g.add_argument("--max-rounds", type=_positive_int, default=60)
    g.add_argument("--cache", default=None, help="where revisions are checked out "
                   "(default ~/.cache/recsys-fast/gate)")
    g.add_argument("--repo", default=".", help="the git repository (default: this folder)")
    g.set_defaults(func=cmd_gate)


def cmd_bench(args: argparse.Namespace) -> int:
    from recsys_fast.harness.cases.registry import check_scales, default_registry
    from recsys_fast.harness.run.bench import (
        EmptyRunError,
        ResultsWriteError,
        RunInterrupted,
        format_table,
        run_bench,
    )

    reg = default_registry()
    if args.list:
        for c in reg.select(args.kernels, args.impl, args.backend):
            print(f"{c.key:45s} {c.note}")
        return 0
    if not args.resume and not check_scales(args.scale):  # before the probe and data
        raise ValueError("no scale selected (e.g. --scale 100k)")
    if args.scheduler is not None:
        from recsys_fast.dask_backend import SCHEDULER_ENV, check_address

        os.environ[SCHEDULER_ENV] = check_address(args.scheduler)  # workers inherit it
    try:
        data, path = run_bench(scales=args.scale, kernels=args.kernels, impls=args.impl,
                               backends=args.backend, quick=args.quick, repeat=args.repeat,
                               out_dir=args.out, ml100k=args.ml100k, shape=args.shape,
                               progress=not args.no_progress, case_timeout=args.case_timeout,
                               max_time=args.max_time,
                               resume=args.resume, isolate=not args.in_process,
                               registry=reg)
    except RunInterrupted as exc:
        print(f"recsys-fast: {exc}", file=sys.stderr)
        return exc.exit_code
    except EmptyRunError as exc:
        print(f"recsys-fast: {exc}", file=sys.stderr)
        return 1
    except ResultsWriteError as exc:
        if exc.data is not None:
            print(format_table(exc.data))
        print(f"recsys-fast: error: {exc}", file=sys.stderr)
        return 1
    print(format_table(data))
    print(f"\nresults written to {path}")
    errors = [c for c in data["cases"] if c["status"] == "error"]
    bad = [c for c in data["cases"] if (c.get("verdict") or "").startswith("mismatch")]
    if errors or bad:
        print(f"{len(errors)} case(s) failed, {len(bad)} mismatch(es)", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from recsys_fast.harness.report import write_report
    from recsys_fast.quality.report import report_sections, summary_cells

    path = write_report(args.results, args.out, plots=not args.no_plots, force=args.force,
                        html=args.html, extra_sections=report_sections,
                        quality_cells=summary_cells)
    print(f"report written to {path}")
    if args.html:
        print(f"self-contained page written to {path.with_name('index.html')}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recsys_fast.harness import gate
    from recsys_fast.harness.cases.registry import check_scales, default_registry

    scales = check_scales([args.scale])
    if len(scales) != 1:
        raise ValueError("--scale takes exactly one scale")
    keys: dict[str, list[str]] = {}
    for c in default_registry().select(args.kernels, args.impl, args.backend):
        keys.setdefault(c.kernel, []).append(c.key)
    if not keys:
        raise ValueError("no case matches that selection")
    repo = Path(gate._git(Path(args.repo), "rev-parse", "--show-toplevel"))
    metric, threshold, note = gate.choose_metric(args.metric, args.threshold)
    if note:
        print(note, file=sys.stderr, flush=True)
    with gate.terminate_as_interrupt():  # SIGTERM cleans up (workers, temp folder) as Ctrl-C
        outcomes = gate.run_gate(repo, args.base, args.head, keys, scales[0], budget=args.budget,
                                 threshold=threshold, min_rounds=args.min_rounds,
                                 max_rounds=args.max_rounds, metric=metric,
                                 cache=Path(args.cache) if args.cache else gate.DEFAULT_CACHE,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(gate.format_gate(outcomes, args.base, args.head, threshold, metric))
    return 1 if gate.gate_failed(outcomes) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from recsys_fast.harness.report import _bw_text, _commit, _peak_text
    from recsys_fast.harness.run.bench import _fmt_time
    from recsys_fast.harness.stats.compare import compare_runs
    from recsys_fast.results_store import load_results

    base, head = load_results(args.base), load_results(args.head)
    print("across runs: drift not controlled (the runs were not interleaved)")
    for name, d in (("base", base), ("head", head)):
        print(f"{name}: {d['machine_id']} {d['created']} commit {_commit(d.get('git'))}; GEMM "
              f"peak {_peak_text(d['gemm_peak'])}; bandwidth {_bw_text(d.get('bandwidth'))}")
    rows = compare_runs(base, head)
    if not rows:
        print("no case ran in both files")
        return 0
    from recsys_fast.harness.report import data_by_scale

    scales = {r["scale"] for r in rows}
    for sc, text in data_by_scale([("base", base), ("head", head)]).items():
        if sc in scales and text.startswith("**"):
            print(f"WARNING: scale {sc}: {text.strip('*').replace('**', '')}: its ratios compare "
                  "different inputs")
    print(f"{'kernel':20s} {'impl':16s} {'backend':7s} {'scale':5s} {'base':>9s} {'head':>9s}  "
          "head/base [95 % CI]")
    for r in rows:
        ci = f" [{r['lo']:.3g}, {r['hi']:.3g}]" if "lo" in r else ""
        mark = "" if r.get("significant", True) else " ~ no difference"
        if r.get("same_data") is False:
            mark += " DIFFERENT DATA"
        print(f"{r['kernel']:20s} {r['impl']:16s} {r['backend']:7s} {r['scale']:5s} "
              f"{_fmt_time(r['base_s']):>9s} {_fmt_time(r['head_s']):>9s}  "
              f"{r['ratio']:.3g}x{ci}{mark}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m recsys_fast bench|report ...``)."""
    parser = argparse.ArgumentParser(prog="recsys-fast")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_commands(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (RecsysFastError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
