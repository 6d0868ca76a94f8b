"""One benchmark session: select cases, measure the machine, run, write the results file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from recsys_fast.errors import RecsysFastError, format_bytes
from recsys_fast.harness import machine as _machine
from recsys_fast.harness.compare import index, row_speedups
from recsys_fast.harness.context import CaseContext
from recsys_fast.harness.registry import (
    DEFAULT_SCALES,
    Registry,
    check_scales,
    default_registry,
)
from recsys_fast.harness.results import build_results, write_results
from recsys_fast.harness.runner import QUICK, RunSettings, run_cases


class OutputDirError(RecsysFastError, OSError):
    """The results folder cannot be written."""


def ensure_writable(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and prove a file can be written there, before any work."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise OutputDirError(f"results folder {str(out)!r} is not writable: "
                             f"{exc.strerror or exc}") from None
    return out


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
    gemm_n: int | None = None,
    progress: bool = True,
    settings: RunSettings | None = None,
) -> tuple[dict, Path | None]:
    """Run the selected cases and write ``<out_dir>/<machine-id>/<timestamp>.json``.

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
    """
    registry = registry or default_registry()
    scales = check_scales(scales)
    cases = registry.select(kernels, impls, backends)
    if not cases:
        raise RecsysFastError("no case matches that selection "
                              f"(kernels={kernels}, impl={impls}, backend={backends})")
    if out_dir is not None:
        ensure_writable(out_dir)
    s = settings or RunSettings(**asdict(QUICK if quick else RunSettings()))
    if repeat is not None:
        if repeat < 1:
            raise ValueError(f"--repeat must be >= 1, got {repeat}")
        s.repeat = repeat
    env = _machine.environment(gemm_n=gemm_n or (1024 if quick else 2048))
    ctx = CaseContext(registry, ml100k=ml100k)
    rows = [r.to_dict() for r in run_cases(cases, scales, ctx, s, progress=progress)]
    data = build_results(
        rows,
        **env,
        settings={**asdict(s), "quick": quick, "scales": scales,
                  "kernels": sorted({c.kernel for c in cases}),
                  "memory_budget_bytes": ctx.budget()},
        data_sources=ctx.data_sources,
        scale_shapes={sc: {k: v for k, v in asdict(ctx.spec(sc)).items() if k != "name"}
                      for sc in scales},
    )
    path = write_results(data, out_dir) if out_dir is not None else None
    return data, path


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


def _fmt_x(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}x"


def format_table(data: dict) -> str:
    """A plain-text table of a results document: one line per case."""
    cases = data["cases"]
    idx = index(cases)
    header = ("kernel", "scale", "impl", "backend", "median", "IQR", "vs naive", "ours vs peer",
              "GPU vs CPU", "peak mem", "verdict / note")
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
                      _fmt_time(c.get("iqr_s")), _fmt_x(sp["vs_naive"]), _fmt_x(sp["ours_vs_this"]),
                      _fmt_x(sp["gpu_vs_cpu"]), "-" if mem is None else format_bytes(mem), note))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header) - 1)]
    out = []
    for row in lines:
        cells = [str(v).ljust(w) for v, w in zip(row[:-1], widths, strict=True)]
        out.append("  ".join(cells) + "  " + str(row[-1]))
    out.insert(1, "-" * min(160, len(out[0]) + 10))
    return "\n".join(out)
