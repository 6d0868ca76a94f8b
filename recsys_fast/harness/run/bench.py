"""One benchmark session: select cases, measure the machine, run every (kernel, scale) group in
its own worker process, journal each finished case, assemble the results file.

See :mod:`~recsys_fast.harness.run.workers` (isolation), :mod:`~recsys_fast.results_store.journal`
(nothing lost, resume) and :mod:`~recsys_fast.harness.run.runner` (interleaved rounds).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recsys_fast.errors import RecsysFastError, format_bytes
from recsys_fast.harness.cases.registry import (
    DEFAULT_SCALES,
    OUT_OF_CORE_SCALES,
    Registry,
    SelectionError,
    check_scales,
    default_registry,
)
from recsys_fast.harness.run import machine as _machine
from recsys_fast.harness.run import provenance
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.runner import QUICK, RunSettings, groups, run_group
from recsys_fast.harness.run.workers import GroupRunner, call_python
from recsys_fast.harness.stats.compare import fmt_ratio, index, ratios, row_speedups
from recsys_fast.results_store import build_results, ensure_writable, write_results
from recsys_fast.results_store.journal import Journal, JournalError


class EmptyRunError(RecsysFastError):
    """Nothing ran: every selected case was skipped (the reasons are in the message)."""


class RunInterrupted(RecsysFastError):
    """SIGINT / SIGTERM stopped the run; the finished cases are in the journal."""

    def __init__(self, signum: int, journal: Path | None, kept: int):
        self.signum, self.journal, self.kept = signum, journal, kept
        name = signal.Signals(signum).name
        where = (f"; {kept} finished case(s) kept in {journal}; resume with "
                 f"`recsys-fast bench --resume {journal.name.split('.')[0]}`") if journal else ""
        super().__init__(f"interrupted by {name}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class ResultsWriteError(RecsysFastError, OSError):
    """The final results file could not be written; the journal keeps the run. ``data`` is the
    assembled document (or None when the journal itself failed)."""

    data: dict | None = None


def _settings(quick: bool, repeat: int | None, settings: RunSettings | None,
              case_timeout: float | None, max_time: float | None = None) -> RunSettings:
    s = settings or RunSettings(**asdict(QUICK if quick else RunSettings()))
    s = RunSettings(**asdict(s))
    if repeat is not None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"--repeat must be a positive integer, got {repeat!r}")
        s.repeat = repeat
    if case_timeout is not None:
        s.case_timeout = case_timeout
    if max_time is not None:
        s.max_time = max_time
    return s.validate()


class _Signals:
    """SIGTERM raises like Ctrl-C in the parent while a run is in progress."""

    def __init__(self) -> None:
        self.signum = signal.SIGINT
        self._old = None

    def __enter__(self) -> _Signals:
        self._old = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            self.signum = signal.SIGTERM
            raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _scale_record(ctx: CaseContext, scale: str, inter=None) -> dict:
    """The data a scale ran on: source, sizes, the laws (shape name) and, for data held in
    memory (``inter``), the counts it really has and its work (:meth:`Interactions.work`)."""
    spec = ctx.spec(scale)
    shape = {"n_users": spec.n_users, "n_items": spec.n_items, "n_ratings": spec.n_ratings,
             "laws": ctx.shape}
    if inter is not None:
        shape.update(n_users=inter.n_users, n_items=inter.n_items, n_ratings=inter.n_ratings,
                     work=inter.work())
    return {"type": "data", "scale": scale, "source": ctx.data_sources.get(scale, "not loaded"),
            "shape": shape,
            "provenance": provenance.finished(ctx.data_provenance.get(scale), inter)}


@dataclass
class Selection:
    """What a run measures: scales, kernels, implementations, backends (None: all), quick
    settings, an explicit MovieLens 100K folder."""

    scales: list
    kernels: list | None = None
    impls: list | None = None
    backends: list | None = None
    quick: bool = False
    ml100k: str | None = None
    shape: str = "default"

    @classmethod
    def of(cls, scales, kernels, impls, backends, quick, ml100k, shape="default") -> Selection:
        as_list = lambda v: None if v is None else list(v)  # noqa: E731
        return cls(list(scales), as_list(kernels), as_list(impls), as_list(backends),
                   bool(quick), str(ml100k) if ml100k else None, shape)


@dataclass
class RunPlan:
    """A checked run, before any case runs: its cases in (kernel, scale) groups, settings,
    machine record, journal, and the rows a resumed run keeps."""

    registry: Registry
    selection: Selection
    cases: list
    groups: list
    settings: RunSettings
    env: dict
    ctx: CaseContext
    isolate: bool
    journal: Journal | None = None
    kept: dict = field(default_factory=dict)
    resumed: bool = False

    def record(self, event: dict) -> None:
        """Append ``event`` to the journal (when there is one)."""
        if self.journal is not None:
            try:
                self.journal.append(event)
            except OSError as exc:
                raise ResultsWriteError(f"cannot write the run journal {self.journal.path}: "
                                        f"{exc.strerror or exc}") from None


def _resumed(out_dir, resume: str) -> tuple[Journal, Selection, RunSettings, dict, dict]:
    """The journal, selection, settings, environment and kept rows of an unfinished run;
    JournalError when this machine or checkout is not the one it started on."""
    if out_dir is None:
        raise ValueError("--resume needs a results folder")
    journal = Journal.find(Path(out_dir), resume)
    torn = journal.torn_tail()
    if torn:
        print(f"resume: the journal's last line was cut off mid-write ({len(torn)} bytes: a kill "
              f"or a full disk); it is set aside in {journal.torn_path.name} and its case runs "
              "again", file=sys.stderr)
    st = journal.state()
    h = st.header
    sel = h["selection"]
    selection = Selection(sel["scales"], sel["kernels"], sel["impls"], sel["backends"],
                          sel["quick"], sel.get("ml100k"), sel.get("shape", "default"))
    env = h["env"]
    here = call_python("recsys_fast.harness.run.machine:machine_id", 120)
    if here != env["machine_id"]:
        raise JournalError(f"run {journal.run} was started on {env['machine_id']!r}; this "
                           f"is {here!r}: resume it there (ratios must share a machine)")
    git = _machine.git_info()
    if git and env.get("git") and (git["commit"], git.get("diff_sha256")) != (
            env["git"]["commit"], env["git"].get("diff_sha256")):
        raise JournalError(f"run {journal.run} was started at commit "
                           f"{env['git']['commit'][:12]}; this checkout differs: resume "
                           "from the same code (or start a new run)")
    kept: dict[tuple[str, str], list[dict]] = {}
    for r in st.rows:
        kept.setdefault((r["kernel"], r["scale"]), []).append(r)
    return journal, selection, RunSettings(**h["settings"]).validate(), env, kept


def plan_run(selection: Selection, *, registry: Registry | None = None,
             settings: RunSettings | None = None, out_dir=None, gemm_n: int | None = None,
             isolate: bool = True, resume: str | None = None) -> RunPlan:
    """Check the selection and the output folder, measure the machine and open the journal,
    all before any case runs (``resume``: the unfinished run's own selection and settings)."""
    registry = registry or default_registry()
    if resume is not None:
        journal, selection, s, env, kept = _resumed(out_dir, resume)
    else:
        journal, s, env, kept = None, settings, None, {}
    scales = check_scales(selection.scales)
    if not scales:
        raise RecsysFastError("no scale selected (e.g. --scale 100k)")
    selection.scales = scales
    cases = registry.select(selection.kernels, selection.impls, selection.backends)
    if not cases:
        raise RecsysFastError("no case matches that selection (kernels="
                              f"{selection.kernels}, impl={selection.impls}, "
                              f"backend={selection.backends})")
    if out_dir is not None:
        ensure_writable(out_dir)
    isolate = isolate and registry.factory is not None
    ctx = CaseContext(registry, ml100k=selection.ml100k, shape=selection.shape)
    if selection.shape != "default":
        out_of_core = [sc for sc in scales if sc in OUT_OF_CORE_SCALES]
        if out_of_core:
            raise SelectionError(f"--shape {selection.shape} applies to in-memory scales; "
                                 f"{', '.join(out_of_core)} read a Parquet folder of the "
                                 "default laws")
    if env is None:
        n = gemm_n or (1024 if selection.quick else 2048)
        # measured in a fresh process: this one never starts BLAS / OpenMP pools or CUDA
        env = (call_python("recsys_fast.harness.run.machine:environment", 900, gemm_n=n)
               if isolate else _machine.environment(gemm_n=n))
        if out_dir is not None:
            header = {"env": env, "settings": asdict(s), "selection": asdict(selection)}
            journal = Journal.create(Path(out_dir) / env["machine_id"], header)
    return RunPlan(registry, selection, cases, groups(cases, scales), s, env, ctx, isolate,
                   journal, kept, resumed=resume is not None)


def _open_scale(plan: RunPlan, scale: str, runner, data_records: dict) -> None:
    """Load (or point the cases at) one scale's data, once for all its groups."""
    ctx = plan.ctx
    ctx.clear()
    in_memory = scale not in OUT_OF_CORE_SCALES  # else read by the cases
    inter = None
    if in_memory:
        inter = ctx.interactions(scale)  # once, in this process: workers share it
    else:
        ctx.data_sources[scale] = (f"synthetic {scale} as Parquet, read by partition "
                                   "(recsys_fast.data.parquet)")
        from recsys_fast.data.synthetic import scale_spec

        ctx.data_provenance[scale] = provenance.generated(  # the generator's parameters
            f"synthetic-{scale}", scale_spec(scale), ctx.seed, "parquet")
    data_records[scale] = _scale_record(ctx, scale, inter)
    if plan.resumed:  # the cases kept ran on this scale's data: the rest must too
        before = plan.journal.state().data.get(scale) or {}
        now = data_records[scale]
        changed = []
        if before and before["source"] != now["source"]:
            changed = [f"{before['source']!r} -> {now['source']!r}"]
        if before.get("provenance") and now["provenance"]:
            changed += provenance.differences(before["provenance"], now["provenance"])
        if changed:
            raise JournalError(f"run {plan.journal.run} ran scale {scale} on other data than "
                               f"it would read now ({'; '.join(changed)}): resume with the same "
                               "data (RECSYS_FAST_SHARED, --ml100k) or start a new run")
    plan.record(data_records[scale])
    if runner is not None and in_memory:
        runner.share(ctx, scale)


def execute(plan: RunPlan, progress: bool = True) -> tuple[dict, dict]:
    """Run every group of the plan (each in a worker process unless not isolated), journaling
    each case as it finishes. Returns the rows by (kernel, scale) and the data records by
    scale. RunInterrupted on SIGINT / SIGTERM, the finished cases kept in the journal."""
    bar = _progress(sum(len(cs) for _, _, cs in plan.groups), progress)
    rows_by_group: dict[tuple[str, str], list[dict]] = {}
    data_records: dict[str, dict] = {}
    runner = GroupRunner(plan.registry, plan.settings,
                         on_row=lambda row: (plan.record({"type": "row", "row": row}),
                                             bar.update(1)),
                         on_stage=lambda key, stage: bar.set_postfix_str(f"{key}: {stage}"),
                         workdir=None) if plan.isolate else None
    try:
        with _Signals() as sig:
            try:
                last_scale = None
                for kernel, scale, group in plan.groups:
                    if (kernel, scale) in plan.kept:
                        rows_by_group[(kernel, scale)] = plan.kept[(kernel, scale)]
                        bar.update(len(group))
                        continue
                    if scale != last_scale:
                        _open_scale(plan, scale, runner, data_records)
                        last_scale = scale
                    bar.set_description(f"{kernel} @ {scale}")
                    plan.record({"type": "group_start", "kernel": kernel, "scale": scale})
                    if runner is not None:
                        rows = runner.run(group, scale, plan.ctx)
                    else:
                        rows = [r.to_dict() for r in run_group(
                            group, scale, plan.ctx, plan.settings, emit=lambda r: (
                                plan.record({"type": "row", "row": r.to_dict()}),
                                bar.update(1)))]
                    order = {c.key: i for i, c in enumerate(group)}
                    rows.sort(key=lambda r: order.get(
                        f"{r['kernel']}/{r['impl']}/{r['backend']}", 99))
                    rows_by_group[(kernel, scale)] = rows
                    plan.record({"type": "group_done", "kernel": kernel, "scale": scale})
            except KeyboardInterrupt:
                if runner is not None:
                    runner.stop()
                n_kept = sum(len(v) for v in rows_by_group.values())
                with contextlib.suppress(ResultsWriteError):
                    plan.record({"type": "interrupted",
                                 "signal": signal.Signals(sig.signum).name})
                raise RunInterrupted(sig.signum, plan.journal.path if plan.journal else None,
                                     n_kept) from None
    finally:
        bar.close()
        plan.ctx.clear()
        if runner is not None:
            runner.close()
    if plan.resumed:
        for sc, ev in plan.journal.state().data.items():
            data_records.setdefault(sc, ev)
    return rows_by_group, data_records


def assemble(plan: RunPlan, rows_by_group: dict, data_records: dict,
             out_dir=None) -> tuple[dict, Path | None]:
    """The results document from the rows in plan order, written to ``out_dir`` (the journal
    removed once it is). EmptyRunError when every case was skipped; ResultsWriteError when
    the file cannot be written (the journal keeps the run)."""
    journal = plan.journal
    ordered = [r for key in ((k, sc) for k, sc, _ in plan.groups)
               for r in rows_by_group.get(key, [])]
    for r in ordered:  # each row names the data it ran on
        prov = data_records.get(r["scale"], {}).get("provenance")
        if prov:
            r["data"] = prov["digest"]
    if not any(r["status"] in ("ok", "error") for r in ordered):
        reasons = sorted({r.get("skipped_reason") or "" for r in ordered})
        if journal is not None:
            journal.path.unlink(missing_ok=True)
        raise EmptyRunError(f"nothing ran: all {len(ordered)} case(s) were skipped ("
                            + "; ".join(reasons[:4]) + (" ..." if len(reasons) > 4 else "")
                            + "); no results file written")
    env = plan.env
    data = build_results(
        ordered,
        **{k: env[k] for k in ("machine", "machine_id", "software", "blas", "thread_env",
                               "gemm_peak", "git")},
        bandwidth=env.get("bandwidth"),
        settings={**asdict(plan.settings), "quick": plan.selection.quick,
                  "scales": plan.selection.scales, "shape": plan.selection.shape,
                  "kernels": sorted({c.kernel for c in plan.cases}),
                  "memory_budget_bytes": plan.ctx.budget(), "isolated": plan.isolate},
        data_sources={sc: ev["source"] for sc, ev in data_records.items()},
        data_provenance={sc: ev["provenance"] for sc, ev in data_records.items()
                         if ev.get("provenance")},
        scale_shapes={sc: ev["shape"] for sc, ev in data_records.items()},
        run=journal.run if journal else None,
        ratios=ratios(ordered),
    )
    if out_dir is None:
        return data, None
    try:
        path = write_results(data, out_dir, name=journal.run)
    except OSError as exc:
        with contextlib.suppress(OSError):
            journal.append({"type": "write_failed", "error": str(exc.strerror or exc)})
        err = ResultsWriteError(
            f"could not write the results file ({exc.strerror or exc}); all {len(ordered)} "
            f"case(s) are kept in {journal.path}: run `recsys-fast bench --resume "
            f"{journal.run}` to write it once the problem is fixed")
        err.data = data
        raise err from None
    journal.path.unlink(missing_ok=True)
    return data, path


def run_bench(
    *,
    scales: Iterable[str] = DEFAULT_SCALES,
    kernels: Iterable[str] | None = None,
    impls: Iterable[str] | None = None,
    backends: Iterable[str] | None = None,
    quick: bool = False,
    repeat: int | None = None,
    out_dir: str | os.PathLike | None = "results",
    registry: Registry | None = None,
    ml100k: str | os.PathLike | None = None,
    shape: str = "default",
    gemm_n: int | None = None,
    progress: bool = True,
    settings: RunSettings | None = None,
    isolate: bool = True,
    case_timeout: float | None = None,
    resume: str | None = None,
    max_time: float | None = None,
) -> tuple[dict, Path | None]:
    """Run the selected cases and write ``<out_dir>/<machine-id>/<run>.json``:
    :func:`plan_run`, :func:`execute`, :func:`assemble`.

    Each (kernel, scale) group runs in its own worker process (``isolate=False``: in this
    process, for debugging); every finished case is journaled at once
    (:mod:`~recsys_fast.results_store.journal`). ``shape`` names the synthetic laws
    (:data:`recsys_fast.data.synthetic.SHAPES`) every in-memory scale is generated with.
    ``resume`` names an unfinished run to complete with its own selection and settings (the other selection arguments are then ignored).

    Returns
    -------
    (results, path)
        The results document and where it was written (``None`` when ``out_dir`` is None).

    Raises
    ------
    SelectionError
        Unknown kernel / implementation / backend / scale (raised before any work).
    OutputDirError
        ``out_dir`` is not writable (raised before any work).
    EmptyRunError
        Every case was skipped: nothing is written.
    RunInterrupted
        SIGINT / SIGTERM: the finished cases stay in the journal.
    ResultsWriteError
        The results file could not be written (the journal keeps the run).
    """
    selection = Selection.of(scales, kernels, impls, backends, quick, ml100k, shape)
    s = None if resume is not None else _settings(quick, repeat, settings, case_timeout,
                                                  max_time)
    plan = plan_run(selection, registry=registry, settings=s, out_dir=out_dir, gemm_n=gemm_n,
                    isolate=isolate, resume=resume)
    return assemble(plan, *execute(plan, progress), out_dir)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="case", desc="bench", file=sys.stderr, disable=not enabled)


def verdict_text(row: dict) -> str:
    """``equal (vs naive)``, ``n/a (why)``, ``reference``... for tables."""
    if row.get("status") != "ok":
        return "-"
    v = row.get("verdict") or "-"
    against = row.get("checked_against")
    if not against or v in ("reference", "unchecked"):
        return v
    return f"{v} ({against})" if v == "n/a" else f"{v} (vs {against})"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def format_table(data: dict) -> str:
    """A plain-text table of a results document: one line per case. Ratios carry their 95 %
    interval; ``~`` marks one whose interval contains 1 (no real difference)."""
    cases = data["cases"]
    idx = index(cases)
    header = ("kernel", "scale", "impl", "backend", "median", "IQR", "rounds", "vs naive",
              "ours vs peer", "GPU/dask vs CPU", "peak mem", "verdict / note")
    lines = [header]
    for c in cases:
        sp = row_speedups(c, idx)
        if c["status"] == "ok":
            note = verdict_text(c)
            if "strategy" in c.get("extra", {}):
                note += f" [strategy {c['extra']['strategy']}]"
        elif c["status"] == "skipped":
            note = f"skipped: {c.get('skipped_reason')}"
        else:
            note = f"ERROR {c.get('error')}"
        mem = c.get("peak_rss_delta_bytes")
        lines.append((c["kernel"], c["scale"], c["impl"], c["backend"], _fmt_time(c.get("median_s")),
                      _fmt_time(c.get("iqr_s")), c.get("rounds") or "-", fmt_ratio(sp["vs_naive"], compact=True),
                      fmt_ratio(sp["ours_vs_this"], compact=True),
                      fmt_ratio(sp["gpu_vs_cpu"], compact=True),
                      "-" if mem is None else format_bytes(mem), note))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header) - 1)]
    out = []
    for row in lines:
        cells = [str(v).ljust(w) for v, w in zip(row[:-1], widths, strict=True)]
        out.append("  ".join(cells) + "  " + str(row[-1]))
    out.insert(1, "-" * min(160, len(out[0]) + 10))
    return "\n".join(out)
