"""The one registry of benchmark cases: kernel x implementation x backend, run at named scales.

Each implementation of a kernel is one adapter class (:mod:`.adapter`), grouped by kernel family
in the ``impls_<area>.py`` modules; the registry turns every (adapter, backend) into a
:class:`Case`, the record the CLI runner, the asv suites (``bench/asv``) and the pytest-benchmark
suites (``bench/pytest``) share. Adapters import kernels lazily inside ``setup``/``run`` so the
registry itself always loads, whatever is installed. An optional third-party package a case needs
is declared in ``requires``: when it is not installed the case is *skipped* with that reason. Any
other import failure (a broken module inside recsys_fast) is an *error*.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from recsys_fast.errors import RecsysFastError

SCALES = ("tiny", "100k", "1m", "10m", "25m")
"""Named scales, smallest first. ``tiny`` exists for smoke tests; the others are MovieLens shapes."""

DEFAULT_SCALES = ("100k",)
OURS = ("naive", "optimised")
"""The two implementations every kernel may have; any other implementation is a peer library."""
BACKENDS = ("cpu", "gpu")

CASE_MODULES = (
    "recsys_fast.harness.impls_popularity",
    "recsys_fast.harness.impls_cf",
    "recsys_fast.harness.impls_fixed_cf",
    "recsys_fast.harness.impls_similarity",
    "recsys_fast.harness.impls_content",
    "recsys_fast.harness.impls_dnn",
)
"""Each module lists its kernel families (abstract adapter classes) in ``FAMILIES``."""


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
    role
        ``naive``, ``optimised`` or ``peer`` (derived from ``impl`` when not given).
    install_note
        Why ``requires`` may be missing where it is known (e.g. the package cannot be installed
        beside this project's numpy): added to the skip reason, one line.
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
    scales: tuple[str, ...] = SCALES
    note: str = ""
    role: str = ""
    install_note: str = ""

    def __post_init__(self) -> None:
        if not self.role:  # derived from the name: naive, optimised, else a peer
            object.__setattr__(self, "role", self.impl if self.impl in OURS else "peer")
        if not self.impl or (self.impl in OURS) != (self.role == self.impl):
            raise ValueError(f"case {self.kernel}: impl {self.impl!r} with role {self.role!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"case {self.kernel}: unknown backend {self.backend!r}")
        bad = [s for s in self.scales if s not in SCALES]
        if bad:
            raise ValueError(f"case {self.kernel}: unknown scales {bad}; valid: {SCALES}")

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
        """Implementation names in report order: naive, optimised, then peers as registered."""
        found = dict.fromkeys(c.impl for c in self if kernel is None or c.kernel == kernel)
        return sorted(found, key=lambda i: OURS.index(i) if i in OURS else len(OURS))

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
        order_impl = {i: n for n, i in enumerate(self.impls())}
        impls = _check_names("implementation", impls, list(order_impl))
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
            key=lambda c: (order[c.kernel], order_impl[c.impl], BACKENDS.index(c.backend))
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
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        raise SelectionError(
            f"unknown scale {', '.join(map(repr, unknown))}; valid: {', '.join(SCALES)}"
        )
    return sorted(set(scales), key=SCALES.index)


def build_registry(modules: Iterable[str] = CASE_MODULES) -> Registry:
    """A fresh registry: one case per (adapter, backend) of each module's ``FAMILIES``."""
    from recsys_fast.harness.adapter import cases_of

    reg = Registry()
    for name in modules:
        for family in importlib.import_module(name).FAMILIES:
            reg.add_kernel(family.kernel, family.description)
            for case in cases_of([family]):
                reg.add(case)
    return reg


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The project's registry (built once per process)."""
    reg = build_registry()
    reg.factory = "recsys_fast.harness.registry:default_registry"
    return reg
