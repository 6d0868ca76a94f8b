"""What the runner times: a :class:`Case` (one implementation of a kernel on one backend) and
the :class:`Verdict` of its equivalence check; the scale and backend names. A leaf module:
cases are generated from the adapters (:mod:`.adapter`) and collected by :mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recsys_fast.data.synthetic import LARGE_SCALES as _LARGE
from recsys_fast.data.synthetic import SCALE_NAMES as ALL_SCALES

OUT_OF_CORE_SCALES = tuple(_LARGE)
"""Synthetic scales read from a Parquet folder by partition, never built as one table in memory:
only cases that list them in ``scales`` run there."""
SCALES = tuple(s for s in ALL_SCALES if s not in OUT_OF_CORE_SCALES)
"""Named in-memory scales, smallest first. ``tiny`` exists for smoke tests; the others are
MovieLens shapes. Every name comes from :data:`recsys_fast.data.synthetic.SCALE_NAMES`."""

OURS = ("naive", "optimised")
"""The two implementations every kernel may have; any other implementation is a peer library."""
BACKENDS = ("cpu", "gpu", "dask")


@dataclass(frozen=True)
class Verdict:
    """Outcome of an equivalence check.

    ``text`` is ``"equal"``, ``"equal up to ties"``, ``"mismatch: ..."``, ``"n/a"`` or
    ``"reference"``; ``against`` says what it was compared with (e.g. ``"naive"``,
    ``"optimised float64"``, ``"200 sampled rows vs exact"``).
    """

    text: str
    against: str = ""

    @property
    def ok(self) -> bool:
        return not self.text.startswith("mismatch")


def _zero(_spec: Any) -> int:
    return 0


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Parameters
    ----------
    kernel, impl, backend
        What is timed; ``impl`` names the implementation (``naive``, ``optimised`` or a peer),
        ``backend`` is one of :data:`BACKENDS`.
    setup
        ``setup(ctx, scale) -> state``: builds inputs (not timed). Data is cached per scale in
        ``ctx``. Raise ``ImportError`` / ``MemoryBudgetError`` / ``BackendUnavailableError`` to
        have the case recorded as skipped.
    run
        ``run(state) -> result``: the timed call. GPU cases synchronise the device before
        returning.
    check
        ``check(ctx, state, result) -> Verdict``, run once before timing; ``None`` means n/a.
    memory_estimate
        ``memory_estimate(spec) -> bytes`` from the scale's shape alone (a
        :class:`~recsys_fast.harness.run.context.ScaleSpec`); over the budget -> skipped.
    flops, examples
        ``f(state) -> float``: floating-point operations actually done per call (nnz-based for
        sparse work) / examples per call, for GFLOP/s and examples/s (``None`` when not
        meaningful). ``flops_dtype`` picks the GEMM peak they are compared with; ``roof``
        ``"scatter"`` marks sparse products bound by random accumulation, whose multiply-adds
        are also set against the run's scatter-add rates.
    dense_flops
        ``f(state) -> float``: the dense-equivalent work (what a dense kernel would do), reported
        separately and labelled as such, never as achieved throughput.
    bytes
        ``f(state) -> float``: bytes a call must move at least (inputs read + outputs written),
        for GB/s and the roofline floor.
    requires
        Optional third-party packages (import names) the case needs; missing -> skipped.
    extra
        ``extra(state, result) -> dict``: anything to record, e.g. the top-k strategy used.
    role
        ``naive``, ``optimised`` or ``peer`` (derived from ``impl`` when not given).
    teardown
        ``teardown(state)``: releases what ``setup`` started (a cluster); called once the case
        leaves the rotation, fails after its setup or is interrupted.
    install_note
        Why ``requires`` may be missing where it is known (e.g. the package cannot be installed
        beside this project's numpy): added to the skip reason, one line.
    worker_env
        Environment variables the case needs set before its worker process starts (e.g.
        ``TF_USE_LEGACY_KERAS=1``, read when TensorFlow is imported): merged into the
        environment of the worker that runs its group, and recorded in its row's ``extra``.
        In-process runs cannot apply them; the case itself must then raise
        ``BackendUnavailableError``.
    unavailable
        ``unavailable() -> str | None``: why the case cannot run here although ``requires`` is
        installed (a runtime outside Python missing, e.g. a JVM), else ``None``; checked
        before setup, a reason makes the case skipped.
    """

    kernel: str
    impl: str
    backend: str
    setup: Callable[[Any, str], Any]
    run: Callable[[Any], Any]
    check: Callable[[Any, Any, Any], Verdict] | None = None
    memory_estimate: Callable[[Any], int] = _zero
    flops: Callable[[Any], float] | None = None
    examples: Callable[[Any], float] | None = None
    dense_flops: Callable[[Any], float] | None = None
    bytes: Callable[[Any], float] | None = None
    flops_dtype: str = "float64"
    roof: str = "gemm"
    requires: tuple[str, ...] = ()
    extra: Callable[[Any, Any], dict] | None = None
    scales: tuple[str, ...] = SCALES
    note: str = ""
    role: str = ""
    install_note: str = ""
    worker_env: dict[str, str] = field(default_factory=dict, hash=False)
    teardown: Callable[[Any], None] | None = None
    unavailable: Callable[[], str | None] | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.worker_env.items()):
            raise ValueError(f"case {self.kernel}/{self.impl}: worker_env must map str to str, "
                             f"got {self.worker_env!r}")
        if not self.role:  # derived from the name: naive, optimised, else a peer
            object.__setattr__(self, "role", self.impl if self.impl in OURS else "peer")
        if not self.impl or (self.impl in OURS) != (self.role == self.impl):
            raise ValueError(f"case {self.kernel}: impl {self.impl!r} with role {self.role!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"case {self.kernel}: unknown backend {self.backend!r}")
        bad = [s for s in self.scales if s not in ALL_SCALES]
        if bad:
            raise ValueError(f"case {self.kernel}: unknown scales {bad}; valid: {ALL_SCALES}")

    @property
    def key(self) -> str:
        return f"{self.kernel}/{self.impl}/{self.backend}"
