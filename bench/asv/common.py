"""Base class of the asv suites: one subclass per kernel, parameters (impl, backend, scale).

``params`` are the same whatever is installed (scipy's rule): a case that is not registered,
whose backend is absent, whose memory estimate exceeds the budget, or whose scale is disabled
raises ``NotImplementedError`` in ``setup`` and asv records it as skipped. Only ``100k`` runs
unless ``RECSYS_FAST_ASV_FULL=1`` (or ``RECSYS_FAST_BENCH_SCALES=100k,1m``) is set.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import recsys_fast  # noqa: F401 - installed by asv in its environment
except ImportError:  # `asv run --python=same` from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recsys_fast.harness.registry import BACKENDS, default_registry  # noqa: E402
from recsys_fast.harness.suites import (  # noqa: E402
    SUITE_SCALES,
    NotRunnable,
    find_case,
    prepare,
)


def params_for(kernel: str) -> list[list[str]]:
    """(impls of the kernel, all backends, all suite scales): fixed, whatever is installed."""
    return [default_registry().impls(kernel), list(BACKENDS), list(SUITE_SCALES)]


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

    def peakmem_kernel(self, impl, backend, scale):
        self.case.run(self.state)


class _FlopsMixin:
    """Adds ``track_gflops``: the case's floating-point work over one timed call."""

    def track_gflops(self, impl, backend, scale):
        t0 = time.perf_counter()
        self.case.run(self.state)
        return self.case.flops(self.state) / (time.perf_counter() - t0) / 1e9

    track_gflops.unit = "GFLOP/s"


class _ExamplesMixin:
    """Adds ``track_examples_per_s`` (items, ratings or training examples per second)."""

    def track_examples_per_s(self, impl, backend, scale):
        t0 = time.perf_counter()
        self.case.run(self.state)
        return self.case.examples(self.state) / (time.perf_counter() - t0)

    track_examples_per_s.unit = "examples/s"
