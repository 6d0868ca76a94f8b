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
from collections.abc import Iterable
from dataclasses import dataclass, field

from recsys_fast.errors import RecsysFastError
from recsys_fast.harness.cases.adapter import cases_of
from recsys_fast.harness.cases.case import (
    ALL_SCALES,
    BACKENDS,
    OURS,
    OUT_OF_CORE_SCALES,
    SCALES,
    Case,
    Verdict,
)

__all__ = ["ALL_SCALES", "BACKENDS", "CASE_MODULES", "OUT_OF_CORE_SCALES", "DEFAULT_SCALES", "OURS", "SCALES", "Case", "Registry",
           "SelectionError", "Verdict", "build_registry", "check_scales", "default_registry"]

DEFAULT_SCALES = ("100k",)

CASE_MODULES = (
    "recsys_fast.harness.cases.impls_popularity",
    "recsys_fast.harness.cases.impls_cf",
    "recsys_fast.harness.cases.impls_fixed_cf",
    "recsys_fast.harness.cases.impls_knn_rank",
    "recsys_fast.harness.cases.impls_predict",
    "recsys_fast.harness.cases.impls_similarity",
    "recsys_fast.harness.cases.impls_content",
    "recsys_fast.harness.cases.impls_hybrid",
    "recsys_fast.harness.cases.impls_dnn",
    "recsys_fast.harness.cases.impls_dask",
)
"""Each module lists its kernel families (abstract adapter classes) in ``FAMILIES``."""


class SelectionError(RecsysFastError, ValueError):
    """An unknown kernel, implementation, backend or scale was asked for."""


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
    unknown = [s for s in scales if s not in ALL_SCALES]
    if unknown:
        raise SelectionError(
            f"unknown scale {', '.join(map(repr, unknown))}; valid: {', '.join(ALL_SCALES)}"
        )
    return sorted(set(scales), key=ALL_SCALES.index)


def build_registry(modules: Iterable[str] = CASE_MODULES) -> Registry:
    """A fresh registry: one case per (adapter, backend) of each module's ``FAMILIES``."""
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
    reg.factory = "recsys_fast.harness.cases.registry:default_registry"
    return reg
