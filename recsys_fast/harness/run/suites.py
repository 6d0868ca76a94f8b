"""Glue shared by the asv suites (``bench/asv``) and the pytest-benchmark suites
(``bench/pytest``): which scales run, and how a registry case is prepared or skipped.

Scales: ``RECSYS_FAST_BENCH_SCALES`` (comma list) if set; else ``100k``, plus ``1m``, ``10m``
and ``25m`` when ``RECSYS_FAST_ASV_FULL=1`` (the expensive grid stays behind a flag, as scipy's
``is_xslow``).
"""

from __future__ import annotations

import os

from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError
from recsys_fast.harness.cases.registry import SCALES, Case, Verdict, check_scales, default_registry
from recsys_fast.harness.run.context import CaseContext

ENV_FULL = "RECSYS_FAST_ASV_FULL"
ENV_SCALES = "RECSYS_FAST_BENCH_SCALES"
SUITE_SCALES = tuple(s for s in SCALES if s != "tiny")  # asv params: fixed, whatever runs


class NotRunnable(Exception):
    """The case cannot run here (backend absent, over budget, scale disabled...)."""


def full_grid() -> bool:
    return os.environ.get(ENV_FULL, "").strip().lower() in ("1", "true", "yes")


def enabled_scales() -> list[str]:
    """Scales the suites run now (see module docstring)."""
    if os.environ.get(ENV_SCALES):
        return check_scales(os.environ[ENV_SCALES].split(","))
    return list(SUITE_SCALES) if full_grid() else ["100k"]


_CTX: CaseContext | None = None


def context() -> CaseContext:
    """One context per process, so data is generated once per scale."""
    global _CTX
    if _CTX is None:
        _CTX = CaseContext(default_registry())
    return _CTX


def prepare(case: Case, scale: str, ctx: CaseContext | None = None, *, check: bool = False,
            warmup: bool = True) -> tuple[object, Verdict | None]:
    """Set a case up for timing: ``(state, verdict)``; raise :class:`NotRunnable` with the
    reason when it is skipped. ``warmup`` runs one untimed call (also the one checked)."""
    if scale not in enabled_scales() and scale != "tiny":
        raise NotRunnable(f"scale {scale} disabled (set {ENV_FULL}=1 or {ENV_SCALES})")
    from recsys_fast.harness.run.runner import scrub_paths, skip_reason  # only once it may run

    ctx = ctx or context()
    reason, _ = skip_reason(case, scale, ctx)
    if reason:
        raise NotRunnable(reason)
    verdict = None
    try:
        state = case.setup(ctx, scale)
        if warmup or check:
            result = case.run(state)
            if check and case.impl == "naive":
                ctx.set_reference(case.kernel, scale, result)
                verdict = Verdict("reference", "itself")
            elif check and case.check is not None:
                verdict = case.check(ctx, state, result)
            elif check:
                verdict = Verdict("n/a")
            del result
    except (MemoryBudgetError, BackendUnavailableError) as exc:
        # declared "cannot run here" conditions only: a broken import inside recsys_fast fails
        raise NotRunnable(scrub_paths(f"{type(exc).__name__}: {exc}")) from exc
    return state, verdict


def find_case(kernel: str, impl: str, backend: str) -> Case:
    reg = default_registry()
    key = f"{kernel}/{impl}/{backend}"
    if key not in reg.cases_by_key:
        raise NotRunnable(f"no case {key}")
    return reg.cases_by_key[key]
