"""Benchmark harness: one case registry shared by ``recsys-fast bench``, asv and pytest-benchmark.

Modules: :mod:`.registry` (cases), :mod:`.context` (scales, data, references), :mod:`.runner`
(timing, memory, skips), :mod:`.machine`, :mod:`.results` (JSON), :mod:`.report` / :mod:`.plots`,
:mod:`.cli`; :mod:`.adapter` and ``impls_*.py`` hold every kernel's implementations. Names below are imported lazily so that
asv, which starts one process per benchmark parameter, pays only for what it uses.
"""

import importlib

_EXPORTS = {
    "BACKENDS": "registry", "OURS": "registry", "SCALES": "registry", "Case": "registry",
    "Registry": "registry", "SelectionError": "registry", "Verdict": "registry",
    "default_registry": "registry", "CaseContext": "context", "ScaleSpec": "context",
    "scale_spec": "context", "CaseResult": "runner", "RunSettings": "runner",
    "run_case": "runner", "run_cases": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"recsys_fast.harness.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'recsys_fast.harness' has no attribute {name!r}")
