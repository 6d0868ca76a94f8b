"""Benchmark harness: one case registry shared by ``recsys-fast bench``, asv and pytest-benchmark.

Sub-packages by concern, each importing only those below it:

- :mod:`.report`: Markdown, HTML and plots from results files;
- :mod:`.gate`: the merge gate (base vs head revision, interleaved);
- :mod:`.run`: the runner, worker processes, memory probe, machine facts, scale contexts and
  ``run_bench`` (plan, execute, assemble);
- :mod:`.stats`: intervals and run-to-run comparison;
- :mod:`.cases`: adapters (one class per implementation, ``impls_*.py``), case data, registry.

Results files are :mod:`recsys_fast.results_store`. Names below are imported lazily so that
asv, which starts one process per benchmark parameter, pays only for what it uses.
"""

import importlib

_EXPORTS = {
    "BACKENDS": "cases.registry", "OURS": "cases.registry", "SCALES": "cases.registry",
    "Case": "cases.registry", "Registry": "cases.registry", "SelectionError": "cases.registry",
    "Verdict": "cases.registry", "default_registry": "cases.registry",
    "CaseContext": "run.context", "ScaleSpec": "run.context", "scale_spec": "run.context",
    "CaseResult": "run.runner", "RunSettings": "run.runner", "run_case": "run.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"recsys_fast.harness.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'recsys_fast.harness' has no attribute {name!r}")
