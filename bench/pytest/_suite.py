"""Helpers of the pytest-benchmark suites (imported by the test modules; see conftest.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

try:
    import recsys_fast  # noqa: F401
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recsys_fast.harness.cases.registry import default_registry  # noqa: E402
from recsys_fast.harness.run.suites import NotRunnable, enabled_scales, prepare  # noqa: E402


def all_cases() -> list:
    """pytest params (case, scale) of every registered case at the enabled scales, ids
    ``kernel-impl-backend-scale``; GPU cases marked gpu."""
    out = []
    for scale in enabled_scales():
        for case in default_registry().select():
            marks = [pytest.mark.gpu] if case.backend == "gpu" else []
            out.append(pytest.param(case, scale, marks=marks,
                                    id=f"{case.kernel}-{case.impl}-{case.backend}-{scale}"))
    return out


def run_benchmark(benchmark, case, scale) -> None:
    """Skip what cannot run here, check once, then time ``case.run`` (pedantic rounds)."""
    try:
        state, verdict = prepare(case, scale, check=True)
    except NotRunnable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info.update({"kernel": case.kernel, "impl": case.impl,
                                 "backend": case.backend, "scale": scale,
                                 "verdict": verdict.text if verdict else None,
                                 "checked_against": verdict.against if verdict else None})
    assert verdict is None or verdict.ok, f"{case.key} at {scale}: {verdict.text}"
    rounds = int(os.environ.get("RECSYS_FAST_BENCH_ROUNDS", "10"))
    benchmark.pedantic(case.run, args=(state,), rounds=rounds, iterations=1, warmup_rounds=0)
