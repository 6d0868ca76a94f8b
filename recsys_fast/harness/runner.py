"""Run cases: skip what cannot run, set up, check once, then time rounds.

Per case: skip (scale not defined, GPU absent, memory estimate over budget, a needed module
missing) -> set up (not timed) -> one warm-up call whose result is checked against the reference
-> ``warmup - 1`` more untimed calls -> up to ``repeat`` timed rounds with
:func:`time.perf_counter` (stopping early once ``max_time`` seconds are spent, after at least
``min_rounds``), peak RSS measured over the timed rounds (:mod:`~recsys_fast.harness.memwatch`).
An exception in one case is recorded as ``status="error"``; the run goes on.
"""

from __future__ import annotations

import gc
import re
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from recsys_fast import backend as _backend
from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError, format_bytes
from recsys_fast.harness.context import CaseContext
from recsys_fast.harness.memwatch import PeakRSS
from recsys_fast.harness.registry import SCALES, Case, Verdict


@dataclass
class RunSettings:
    repeat: int = 5
    warmup: int = 1
    min_rounds: int = 1
    max_time: float = 20.0
    check: bool = True


QUICK = RunSettings(repeat=3, warmup=1, min_rounds=1, max_time=3.0)


@dataclass
class CaseResult:
    """One row of the results file (see :mod:`recsys_fast.harness.results`)."""

    kernel: str
    impl: str
    backend: str
    scale: str
    status: str = "ok"  # ok | skipped | error
    median_s: float | None = None
    iqr_s: float | None = None
    min_s: float | None = None
    rounds: int = 0
    times_s: list[float] = field(default_factory=list)
    setup_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_rss_delta_bytes: int | None = None
    memory_estimate_bytes: int | None = None
    verdict: str | None = None
    checked_against: str | None = None
    skipped_reason: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def gpu_available() -> bool:
    """Indirection so tests can fake a missing (or present) GPU."""
    return _backend.gpu_available()


def gpu_unavailable_reason() -> str:
    return _backend.gpu_unavailable_reason() or "no usable GPU"


def skip_reason(case: Case, scale: str, ctx: CaseContext) -> tuple[str | None, int | None]:
    """Why ``case`` cannot run at ``scale`` here (``None`` if it can), and its memory estimate."""
    if scale not in case.scales:
        return f"not defined at scale {scale}", None
    if case.backend == "gpu" and not gpu_available():
        return f"gpu backend unavailable: {gpu_unavailable_reason()}", None
    estimate = int(case.memory_estimate(ctx.spec(scale)))
    budget = ctx.budget()
    if case.backend == "gpu":
        budget = _backend.get_backend("gpu").free_bytes()
    if estimate > budget:
        where = "GPU memory free" if case.backend == "gpu" else "memory budget"
        return f"needs {format_bytes(estimate)} ({where} {format_bytes(budget)})", estimate
    return None, estimate


_ABS_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"():,/]+/)+([^\s'\"():,/]+)")


def scrub_paths(text: str) -> str:
    """Absolute paths -> base names: results files are committed and shared."""
    return _ABS_PATH.sub(r"\1", text)


def _skip_message(exc: BaseException) -> str | None:
    if isinstance(exc, MemoryBudgetError | BackendUnavailableError):
        return scrub_paths(str(exc))
    if isinstance(exc, ImportError):
        return scrub_paths(f"not available: {exc}")
    return None


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].name}, {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return scrub_paths(f"{type(exc).__name__}: {exc}{where}")


def _gpu_pool():
    if not gpu_available():
        return None
    return _backend.get_backend("gpu").memory_pool()


def run_case(case: Case, scale: str, ctx: CaseContext, settings: RunSettings | None = None
             ) -> CaseResult:
    """Run one case at one scale; never raises except for KeyboardInterrupt."""
    s = settings or RunSettings()
    res = CaseResult(case.kernel, case.impl, case.backend, scale)
    try:
        reason, res.memory_estimate_bytes = skip_reason(case, scale, ctx)
    except Exception as exc:  # a broken estimate must not stop the run
        reason = None
        res.status, res.error = "error", _error_text(exc)
        return res
    if reason:
        res.status, res.skipped_reason = "skipped", reason
        return res
    state = None
    stage = "setup"
    try:
        t0 = time.perf_counter()
        state = case.setup(ctx, scale)
        res.setup_s = time.perf_counter() - t0
        stage = "first call"
        result = case.run(state)
        stage = "check"
        if case.impl == "naive":
            ctx.set_reference(case.kernel, scale, result)
            verdict = Verdict("reference", "itself")
        elif not s.check:
            verdict = Verdict("unchecked", "")
        elif case.check is None:
            verdict = Verdict("n/a", "")
        else:
            verdict = case.check(ctx, state, result)
        res.verdict, res.checked_against = verdict.text, verdict.against or None
        stage = "extra"
        if case.extra is not None:
            res.extra.update(case.extra(state, result))
        del result
        stage = "warm-up"
        for _ in range(max(0, s.warmup - 1)):
            case.run(state)
        stage = "timing"
        gc.collect()
        pool = _gpu_pool() if case.backend == "gpu" else None
        if pool is not None:
            pool.free_all_blocks()
        times: list[float] = []
        with PeakRSS() as mem:
            while len(times) < max(1, s.repeat):
                t0 = time.perf_counter()
                case.run(state)
                times.append(time.perf_counter() - t0)
                if sum(times) >= s.max_time and len(times) >= s.min_rounds:
                    break
        if pool is not None:
            res.extra["gpu_pool_bytes"] = int(pool.total_bytes())
        _fill_stats(res, times, mem)
        if case.flops is not None:
            res.extra["gflops"] = case.flops(state) / res.median_s / 1e9
        if case.examples is not None:
            res.extra["examples_per_s"] = case.examples(state) / res.median_s
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - one bad case must not end the run
        # a kernel module not written/installed yet shows up as an ImportError at setup or at
        # the first call (case modules import lazily): that is "not available", not a failure
        msg = _skip_message(exc) if stage in ("setup", "first call") else None
        if msg:
            res.status, res.skipped_reason = "skipped", msg
        else:
            res.status, res.error = "error", f"{stage}: {_error_text(exc)}"
    finally:
        del state  # the next case's gc.collect() (before its timing) reclaims it
    return res


def _fill_stats(res: CaseResult, times: list[float], mem: PeakRSS) -> None:
    t = np.asarray(times)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    res.times_s = [float(x) for x in t]
    res.median_s, res.iqr_s, res.min_s = float(med), float(q3 - q1), float(t.min())
    res.rounds = len(times)
    res.peak_rss_bytes, res.peak_rss_delta_bytes = int(mem.peak), int(mem.delta)
    res.extra["memory_method"] = mem.method


def plan(cases: Iterable[Case], scales: Iterable[str]) -> list[tuple[Case, str]]:
    """(case, scale) pairs in run order: by scale, then the registry's kernel/impl order, so
    data is built once per scale and each kernel's naive reference is available to its peers."""
    cases = list(cases)
    return [(c, sc) for sc in sorted(set(scales), key=SCALES.index) for c in cases]


def run_cases(cases: Iterable[Case], scales: Iterable[str], ctx: CaseContext,
              settings: RunSettings | None = None, progress: bool = True
              ) -> Iterator[CaseResult]:
    """Run every case at every scale, yielding results; caches are freed between scales."""
    from tqdm.auto import tqdm

    todo = plan(cases, scales)
    bar = tqdm(todo, disable=not progress or None, unit="case", desc="bench")
    last_scale = last_kernel = None
    for case, scale in bar:
        if scale != last_scale and last_scale is not None:
            ctx.clear()
        elif case.kernel != last_kernel and last_kernel is not None:
            ctx.clear(references_only=True)
        last_scale, last_kernel = scale, case.kernel
        bar.set_postfix_str(f"{case.key} @ {scale}")
        yield run_case(case, scale, ctx, settings)
    ctx.clear()
