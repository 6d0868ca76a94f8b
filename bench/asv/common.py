"""Base class of the asv suites: one subclass per kernel, parameters (impl, backend, scale).

``params`` are the same whatever is installed (scipy's rule): a case that is not registered,
whose backend is absent, whose memory estimate exceeds the budget, or whose scale is disabled
raises ``NotImplementedError`` in ``setup`` and asv records it as skipped (``n/a``, without the
reason: ``python bench/asv/skips.py`` lists each skipped combination with its reason). Only
``100k`` runs unless ``RECSYS_FAST_ASV_FULL=1`` (or ``RECSYS_FAST_BENCH_SCALES=100k,1m``) is set.

Every metric is lower-is-better, because that is how ``asv continuous`` and ``asv compare``
read every benchmark: ``time_kernel`` (seconds per call) and ``track_peak_bytes`` (the memory
the call adds). Throughputs (GFLOP/s, examples/s) are not tracked here: asv would report a
speed-up as a regression. The harness report (``recsys-fast report``) shows them.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import recsys_fast  # noqa: F401 - installed by asv in its environment
except ImportError:  # `asv run --python=same` from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recsys_fast.harness.cases.registry import BACKENDS, default_registry  # noqa: E402
from recsys_fast.harness.run.memwatch import MemoryProbe  # noqa: E402
from recsys_fast.harness.run.suites import (  # noqa: E402
    ENV_FULL,
    ENV_SCALES,
    SUITE_SCALES,
    NotRunnable,
    context,
    enabled_scales,
    find_case,
    prepare,
)

LOWER_IS_BETTER_UNITS = ("seconds", "bytes")
"""Units of the ``track_*`` methods: all lower-is-better, as asv assumes."""


def params_for(kernel: str) -> list[list[str]]:
    """(impls of the kernel, all backends, all suite scales): fixed, whatever is installed."""
    return [default_registry().impls(kernel), list(BACKENDS), list(SUITE_SCALES)]


def why_skipped(kernel: str, impl: str, backend: str, scale: str) -> str | None:
    """Why ``setup`` would skip this combination here, from the declared conditions alone
    (no data is built): not registered, scale disabled, optional package, runtime or backend
    missing, memory estimate over the budget. ``None``: it runs (setup may still find the
    backend unusable or the memory short, and then says so in its ``NotImplementedError``)."""
    from recsys_fast.harness.run.runner import skip_reason  # imports the kernels' dependencies

    try:
        case = find_case(kernel, impl, backend)
    except NotRunnable as exc:
        return str(exc)
    if scale not in enabled_scales():
        return f"scale {scale} disabled (set {ENV_FULL}=1 or {ENV_SCALES})"
    return skip_reason(case, scale, context())[0]


def combinations(kernels: list[str] | None = None):
    """Every (kernel, impl, backend, scale) the suites declare, in asv's parameter order.

    Raises
    ------
    SelectionError
        An unknown kernel (the message lists the valid ones).
    """
    if kernels:
        default_registry().select(kernels=kernels)  # validates the names
    for kernel in kernels or list(default_registry().kernels):
        impls, backends, scales = params_for(kernel)
        for impl in impls:
            for backend in backends:
                for scale in scales:
                    yield kernel, impl, backend, scale


class _KernelBenchmark:
    """Subclasses (named without a leading underscore, which asv skips) set ``kernel`` and ``params = params_for(kernel)``."""

    kernel = ""
    param_names = ["impl", "backend", "scale"]
    timeout = 900
    number = 1  # one call per sample: the kernels take milliseconds to minutes
    repeat = (1, 5, 60.0)
    warmup_time = 0  # setup already ran one untimed call
    warmup_call = True  # the CI smoke turns it off to run each case exactly once

    def setup(self, impl, backend, scale):
        try:
            self.case = find_case(self.kernel, impl, backend)
            self.state, _ = prepare(self.case, scale, warmup=self.warmup_call)
        except NotRunnable as exc:
            raise NotImplementedError(str(exc)) from None

    def teardown(self, impl, backend, scale):
        self.state = None

    def time_kernel(self, impl, backend, scale):
        self.case.run(self.state)

    def track_peak_bytes(self, impl, backend, scale):
        """Host memory one call adds: the peak RSS above the RSS before it, after a collection
        and a heap trim (the harness's per-case probe, ``recsys_fast.harness.run.memwatch``), so
        the interpreter and the prepared inputs are not counted. GPU memory is not seen."""
        with MemoryProbe() as probe:
            self.case.run(self.state)
        return probe.delta

    track_peak_bytes.unit = "bytes"
