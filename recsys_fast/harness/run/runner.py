"""Run one group of cases (a kernel at a scale): prepare each, then time them interleaved.

Per case, in registry order (naive first, so it becomes the reference of the others):
skip (scale not defined, an optional package declared in ``Case.requires`` missing, a runtime
named by ``Case.unavailable`` missing, GPU absent, memory estimate over budget) -> set up (not
timed) -> the first call, whose result is checked against the reference (it also absorbs JIT
compilation, graph tracing, caches) -> ``warmup`` untimed calls, the first of which is the
**memory probe** (see :mod:`~recsys_fast.harness.run.memwatch`). Then the prepared cases are timed
**round-robin**: round ``r`` runs every case still short of its rounds once, back to back, so
machine drift hits all alike and round ``r`` of two cases can be paired
(:mod:`~recsys_fast.harness.stats`). A case leaves the rotation after ``repeat`` rounds, or
once it has spent ``max_time`` seconds and has ``min_rounds``.

Skips are only the declared "cannot run here" conditions (:class:`MemoryBudgetError`,
:class:`BackendUnavailableError`, a missing package named in ``requires``, a reason from
``Case.unavailable``). Any other exception, an ``ImportError`` from inside recsys_fast
included, is ``status="error"``. Ctrl-C is never recorded as a case error. Process isolation
(one worker per group, timeouts, crashes) is :mod:`~recsys_fast.harness.run.workers`.
"""

from __future__ import annotations

import contextlib
import gc
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from recsys_fast import backend as _backend
from recsys_fast import optional
from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError, format_bytes
from recsys_fast.harness.cases.registry import ALL_SCALES, OUT_OF_CORE_SCALES, Case, Verdict
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.memwatch import MemoryProbe


@dataclass
class RunSettings:
    repeat: int = 10
    warmup: int = 1
    min_rounds: int = 5
    max_time: float = 20.0
    check: bool = True
    case_timeout: float = 1800.0  # seconds per stage of a case (setup, first call, a round)

    def validate(self) -> RunSettings:
        for name in ("repeat", "warmup", "min_rounds"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("max_time", "case_timeout"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        self.min_rounds = min(self.min_rounds, self.repeat)
        return self


QUICK = RunSettings(repeat=5, warmup=1, min_rounds=3, max_time=3.0)


@dataclass
class CaseResult:
    """One row of the results file (see :mod:`recsys_fast.results_store`)."""

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
    worker: str | None = None  # cases timed in one worker with equal rounds pair up
    interleaved: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kernel}/{self.impl}/{self.backend}"

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
        if scale in OUT_OF_CORE_SCALES:
            return (f"not defined at scale {scale} (out-of-core: only cases that read its "
                    "Parquet folder by partition run there)"), None
        return f"not defined at scale {scale}", None
    why = optional.skip_reason(case.requires, case.install_note)
    if why:
        return why, None
    why = case.unavailable() if case.unavailable is not None else None
    if why:
        return scrub_paths(why), None
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


def error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].name}, {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return scrub_paths(f"{type(exc).__name__}: {exc}{where}")


def _skip_message(exc: BaseException) -> str | None:
    """Only the declared "cannot run here" exceptions are skips; everything else is an error."""
    if isinstance(exc, MemoryBudgetError | BackendUnavailableError):
        return scrub_paths(str(exc))
    return None


def _gpu_pool():
    if not gpu_available():
        return None
    return _backend.get_backend("gpu").memory_pool()


class _SigintGuard:
    """While active (main thread only), Ctrl-C sets ``fired`` before the SIGINT handler in place
    runs (Python's, raising KeyboardInterrupt, or one a library installed), so an interrupt that
    a C extension turns into another exception (TensorFlow: SystemError) is still recognised as
    an interrupt and never recorded as a case error. An ignored SIGINT stays ignored."""

    def __init__(self) -> None:
        self.fired = False
        self._old = None

    def __enter__(self) -> _SigintGuard:
        if threading.current_thread() is threading.main_thread():
            old = signal.getsignal(signal.SIGINT)
            if old is not signal.SIG_IGN:
                self._old = old
                signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.fired = True
        if callable(self._old):
            self._old(signum, frame)
        raise KeyboardInterrupt  # SIG_DFL, None, or a handler that returned

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


Notify = Callable[[str, str], None]  # (case key, stage) before each stage: for timeouts
Emit = Callable[[CaseResult], None]


@dataclass
class _Prepared:
    case: Case
    res: CaseResult
    state: object
    times: list[float] = field(default_factory=list)


def _record_memory(res: CaseResult, mem: MemoryProbe) -> None:
    """The probed call's peak resident memory (and its rise) on the row."""
    res.peak_rss_bytes, res.peak_rss_delta_bytes = mem.peak, mem.delta
    res.extra["memory_method"] = mem.method


def _prepare(case: Case, scale: str, ctx: CaseContext, s: RunSettings, notify: Notify,
             guard: _SigintGuard) -> _Prepared:
    """Skip / set up / check / probe + warm up one case; its ``res.status`` is final unless
    ``"ok"`` (then it is ready to be timed)."""
    res = CaseResult(case.kernel, case.impl, case.backend, scale)
    prep = _Prepared(case, res, None)
    stage = "skip check"
    try:
        notify(case.key, stage)
        reason, res.memory_estimate_bytes = skip_reason(case, scale, ctx)
        if reason:
            res.status, res.skipped_reason = "skipped", reason
            return prep
        stage = "setup"
        notify(case.key, stage)
        t0 = time.perf_counter()
        prep.state = case.setup(ctx, scale)
        res.setup_s = time.perf_counter() - t0
        stage = "first call"
        notify(case.key, stage)
        once = scale in OUT_OF_CORE_SCALES  # minutes a call: one call, timed and checked
        with MemoryProbe() if once else contextlib.nullcontext() as mem:
            t0 = time.perf_counter()
            result = case.run(prep.state)
            t_first = time.perf_counter() - t0
        if once:
            prep.times.append(t_first)
            _record_memory(res, mem)
            res.extra["rounds_note"] = ("out-of-core scale: one call, timed and checked (no "
                                        "warm-up, no repeats)")
        stage = "check"
        notify(case.key, stage)
        if case.impl == "naive":
            ctx.set_reference(case.kernel, scale, result)
            verdict = Verdict("reference", "itself")
        elif not s.check:
            verdict = Verdict("unchecked", "")
        elif case.check is None:
            verdict = Verdict("n/a", "")
        else:
            verdict = case.check(ctx, prep.state, result)
        res.verdict, res.checked_against = verdict.text, verdict.against or None
        if case.extra is not None:
            res.extra.update(case.extra(prep.state, result))
        del result
        for n in range(0 if prep.times else s.warmup):  # the first is the memory probe
            stage = f"warm-up {n + 1}"
            notify(case.key, stage)
            if n == 0:
                with MemoryProbe() as mem:
                    case.run(prep.state)
                _record_memory(res, mem)
            else:
                case.run(prep.state)
        return prep
    except KeyboardInterrupt:
        _release(prep)
        raise
    except BaseException as exc:  # noqa: BLE001 - one bad case must not end the run
        if guard.fired:
            _release(prep)
            raise KeyboardInterrupt from exc
        msg = _skip_message(exc) if stage in ("setup", "first call") else None
        if msg:
            res.status, res.skipped_reason = "skipped", msg
        else:
            res.status, res.error = "error", f"{stage}: {error_text(exc)}"
        _release(prep)
        return prep


def _release(prep: _Prepared) -> None:
    """Drop a case's state, first letting the case release what its setup started."""
    state, prep.state = prep.state, None
    if state is not None and prep.case.teardown is not None:
        try:
            prep.case.teardown(state)
        except Exception as exc:  # noqa: BLE001 - the timings stand; the failure is recorded
            prep.res.extra["teardown_error"] = error_text(exc)


def _finish(prep: _Prepared) -> CaseResult:
    res, case = prep.res, prep.case
    t = np.asarray(prep.times)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    res.times_s = [float(x) for x in t]
    res.median_s, res.iqr_s, res.min_s = float(med), float(q3 - q1), float(t.min())
    res.rounds = len(t)
    try:
        res.extra.update(work_figures(case, prep.state, res.median_s))
    except Exception as exc:  # noqa: BLE001 - a broken work model must not lose the timings
        res.extra["work_error"] = error_text(exc)
    return res


def work_figures(case: Case, state, median_s: float) -> dict:
    """GFLOP/s, GB/s and examples/s of one call from the case's work model."""
    out: dict = {}
    if case.flops is not None:
        flops = float(case.flops(state))
        out["flops"] = flops
        out["gflops"] = flops / median_s / 1e9
        out["flops_dtype"] = case.flops_dtype
        out["roof"] = case.roof
    if case.dense_flops is not None:
        out["dense_equiv_gflops"] = float(case.dense_flops(state)) / median_s / 1e9
    if case.bytes is not None:
        nbytes = float(case.bytes(state))
        out["bytes"] = nbytes
        out["gbytes_per_s"] = nbytes / median_s / 1e9
    if case.examples is not None:
        out["examples_per_s"] = case.examples(state) / median_s
    return out


def run_group(cases: list[Case], scale: str, ctx: CaseContext, settings: RunSettings | None = None,
              *, emit: Emit | None = None, notify: Notify | None = None, worker: str = "main"
              ) -> list[CaseResult]:
    """Prepare every case of one group, then time the prepared ones interleaved.

    ``emit`` gets each case's final row as soon as it is final (skips and errors at once, timed
    cases when they leave the rotation); ``notify(key, stage)`` is called before each stage so
    a supervising process knows what a hang or a crash belongs to. Never raises for a case's
    failure; KeyboardInterrupt propagates.
    """
    s = settings or RunSettings()
    emit = emit or (lambda r: None)
    notify = notify or (lambda k, st: None)
    out: list[CaseResult] = []

    def done(res: CaseResult) -> None:
        res.worker = worker
        out.append(res)
        emit(res)

    active: list[_Prepared] = []
    with _SigintGuard() as guard, _releasing(active):
        for case in cases:
            prep = _prepare(case, scale, ctx, s, notify, guard)
            if prep.res.status != "ok":
                done(prep.res)
            elif prep.times:  # timed in its first call (out-of-core scales)
                res = _finish(prep)
                _release(prep)
                done(res)
            else:
                active.append(prep)
        interleaved = len(active) > 1
        gc.collect()
        rnd = 0
        while active:
            rnd += 1
            for prep in list(active):
                notify(prep.case.key, f"round {rnd}")
                try:
                    t0 = time.perf_counter()
                    prep.case.run(prep.state)
                    dt = time.perf_counter() - t0
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001
                    if guard.fired:
                        raise KeyboardInterrupt from exc
                    prep.res.status = "error"
                    prep.res.error = f"round {rnd}: {error_text(exc)}"
                    active.remove(prep)
                    _release(prep)
                    done(prep.res)
                    continue
                prep.times.append(dt)
                n = len(prep.times)
                if n >= s.repeat or (sum(prep.times) >= s.max_time and n >= s.min_rounds):
                    pool = _gpu_pool() if prep.case.backend == "gpu" else None
                    if pool is not None:
                        prep.res.extra["gpu_pool_bytes"] = int(pool.total_bytes())
                    prep.res.interleaved = interleaved
                    res = _finish(prep)
                    active.remove(prep)
                    _release(prep)
                    done(res)
    return out


@contextlib.contextmanager
def _releasing(active: list[_Prepared]):
    """On the way out (an interrupt included), release the states of cases still active."""
    try:
        yield
    finally:
        for prep in active:
            _release(prep)


def run_case(case: Case, scale: str, ctx: CaseContext, settings: RunSettings | None = None
             ) -> CaseResult:
    """Run one case at one scale in this process; never raises except for KeyboardInterrupt."""
    return run_group([case], scale, ctx, settings)[0]


def groups(cases: list[Case], scales: list[str]) -> list[tuple[str, str, list[Case]]]:
    """``(kernel, scale, cases)`` in run order: by scale, then the registry's kernel/impl order
    (naive first, so it is the reference of its group)."""
    by_kernel: dict[str, list[Case]] = {}
    for c in cases:
        by_kernel.setdefault(c.kernel, []).append(c)
    return [(k, sc, cs) for sc in sorted(set(scales), key=ALL_SCALES.index)
            for k, cs in by_kernel.items()]
