"""The one registry of benchmark cases: kernel x implementation x backend, run at named scales.

A :class:`Case` is defined once (in a ``cases_<area>.py`` module) and reused by the CLI runner,
the asv suites (``bench/asv``) and the pytest-benchmark suites (``bench/pytest``). Case modules
import kernels lazily inside ``setup`` so the registry itself always loads, whatever is installed.
An optional third-party package a case needs is declared in ``Case.requires``: when it is not
installed the case is *skipped* with that reason. Any other import failure (a broken module inside
recsys_fast) is an *error*.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from recsys_fast.errors import RecsysFastError

SCALES = ("tiny", "100k", "1m", "10m", "25m")
"""Named in-memory scales, smallest first. ``tiny`` exists for smoke tests; the others are
MovieLens shapes."""
OUT_OF_CORE_SCALES = ("100m", "1b")
"""Synthetic scales read from a Parquet folder by partition, never built as one table in memory:
only cases that list them in ``Case.scales`` run there."""
ALL_SCALES = SCALES + OUT_OF_CORE_SCALES

DEFAULT_SCALES = ("100k",)
IMPLS = ("naive", "optimised", "implicit", "sparse_dot_topn", "sklearn", "scipy")
"""Implementations, in report order. Everything after ``optimised`` is a peer library."""
PEERS = IMPLS[2:]
BACKENDS = ("cpu", "gpu", "dask")

CASE_MODULES = (
    "recsys_fast.harness.cases_popularity",
    "recsys_fast.harness.cases_cf",
    "recsys_fast.harness.cases_fixed_cf",
    "recsys_fast.harness.cases_similarity",
    "recsys_fast.harness.cases_content",
    "recsys_fast.harness.cases_dnn",
    "recsys_fast.harness.cases_dask",
)
"""Each module defines ``register(registry)``: the one place a kernel contributes its cases."""


class SelectionError(RecsysFastError, ValueError):
    """An unknown kernel, implementation, backend or scale was asked for."""


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
        What is timed; ``impl`` is one of :data:`IMPLS`, ``backend`` one of :data:`BACKENDS`.
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
        :class:`~recsys_fast.harness.context.ScaleSpec`); over the budget -> skipped.
    flops, examples
        ``f(state) -> float``: floating-point operations actually done per call (nnz-based for
        sparse work) / examples per call, for GFLOP/s and examples/s (``None`` when not
        meaningful). ``flops_dtype`` picks the GEMM peak they are compared with.
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
    teardown
        ``teardown(state)``: releases what ``setup`` started (a cluster); called once the case
        leaves the rotation, is skipped or fails after its setup.
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
    requires: tuple[str, ...] = ()
    extra: Callable[[Any, Any], dict] | None = None
    teardown: Callable[[Any], None] | None = None
    scales: tuple[str, ...] = SCALES
    note: str = ""

    def __post_init__(self) -> None:
        if self.impl not in IMPLS:
            raise ValueError(f"case {self.kernel}: unknown impl {self.impl!r}; valid: {IMPLS}")
        if self.backend not in BACKENDS:
            raise ValueError(f"case {self.kernel}: unknown backend {self.backend!r}")
        bad = [s for s in self.scales if s not in ALL_SCALES]
        if bad:
            raise ValueError(f"case {self.kernel}: unknown scales {bad}; valid: {ALL_SCALES}")

    @property
    def key(self) -> str:
        return f"{self.kernel}/{self.impl}/{self.backend}"


@dataclass
class Registry:
    """An ordered collection of cases; ``kernels`` keeps a one-line description per kernel."""

    cases_by_key: dict[str, Case] = field(default_factory=dict)
    kernels: dict[str, str] = field(default_factory=dict)
    factory: str | None = None
    """``"module:function"`` that rebuilds this registry in a worker process (isolated runs)."""

    def add_kernel(self, name: str, description: str) -> None:
        self.kernels[name] = description

    def add(self, case: Case) -> Case:
        if case.key in self.cases_by_key:
            raise ValueError(f"case {case.key} registered twice")
        self.kernels.setdefault(case.kernel, "")
        self.cases_by_key[case.key] = case
        return case

    def get(self, kernel: str, impl: str, backend: str) -> Case:
        try:
            return self.cases_by_key[f"{kernel}/{impl}/{backend}"]
        except KeyError:
            raise SelectionError(f"no case {kernel}/{impl}/{backend}") from None

    def __len__(self) -> int:
        return len(self.cases_by_key)

    def __iter__(self):
        return iter(self.cases_by_key.values())

    def impls(self, kernel: str | None = None) -> list[str]:
        found = {c.impl for c in self if kernel is None or c.kernel == kernel}
        return [i for i in IMPLS if i in found]

    def select(
        self,
        kernels: Iterable[str] | None = None,
        impls: Iterable[str] | None = None,
        backends: Iterable[str] | None = None,
    ) -> list[Case]:
        """Cases matching every given filter (``None`` = all), in kernel, impl, backend order.

        Raises
        ------
        SelectionError
            A name is unknown; the message lists the valid ones.
        """
        kernels = _check_names("kernel", kernels, list(self.kernels))
        impls = _check_names("implementation", impls, list(IMPLS))
        backends = _check_names("backend", backends, list(BACKENDS))
        chosen = [
            c
            for c in self
            if (kernels is None or c.kernel in kernels)
            and (impls is None or c.impl in impls)
            and (backends is None or c.backend in backends)
        ]
        order = {k: i for i, k in enumerate(self.kernels)}
        chosen.sort(
            key=lambda c: (order[c.kernel], IMPLS.index(c.impl), BACKENDS.index(c.backend))
        )
        return chosen


def _check_names(what: str, names: Iterable[str] | None, valid: list[str]) -> set[str] | None:
    if names is None:
        return None
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise SelectionError(
            f"unknown {what} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    return set(names) or None


def check_scales(scales: Iterable[str]) -> list[str]:
    """Validate scale names; raise :class:`SelectionError` listing the valid ones."""
    scales = [s.strip() for s in scales if s.strip()]
    unknown = [s for s in scales if s not in ALL_SCALES]
    if unknown:
        raise SelectionError(
            f"unknown scale {', '.join(map(repr, unknown))}; valid: {', '.join(ALL_SCALES)}"
        )
    return sorted(set(scales), key=ALL_SCALES.index)


def build_registry(modules: Iterable[str] = CASE_MODULES) -> Registry:
    """A fresh registry filled by each case module's ``register(registry)``."""
    reg = Registry()
    for name in modules:
        importlib.import_module(name).register(reg)
    return reg


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The project's registry (built once per process)."""
    reg = build_registry()
    reg.factory = "recsys_fast.harness.registry:default_registry"
    return reg
