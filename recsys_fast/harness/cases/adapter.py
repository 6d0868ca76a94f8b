"""Implementations as adapters: one class per implementation of a kernel.

A kernel family (``cosine_topk``, ``tfidf_topk``...) defines an abstract interface: an
:class:`Adapter` subclass that knows the family's inputs (``setup``), its check against the
reference and its work model. Each implementation (the course's naive code, our optimised kernel,
every peer library) is one concrete subclass of that interface: it names itself, declares the
optional packages it needs and the backends it runs on, prepares its own input from the family's
state and makes the timed call. The registry, the asv and pytest-benchmark suites, the report's
implementation order and plot styles and the environment record's library list are all derived
from these classes (:func:`cases_of`), as tensorflow/recommenders' ``TopK`` implementations or
implicit's ``RecommenderBase`` subclasses share one interface.

Adding a peer is one class and its conformance test (see ``bench/README.md``)::

    class ChunkdotTopK(TopKImpl):
        name = "chunkdot"
        requires = ("chunkdot",)
        note = "chunkdot.cosine_similarity_top_k"

        def prepare(self, st):
            return st.X
        def run(self, st):
            import chunkdot
            return chunkdot.cosine_similarity_top_k(st.input, top_k=st.k + 1)
        def as_reference_form(self, st, result):
            return drop_self_keep_k(result, st.k)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from recsys_fast import optional
from recsys_fast.harness.cases.case import ALL_SCALES, BACKENDS, SCALES, Case, Verdict

ROLES = ("naive", "optimised", "peer")
MARKERS = {"naive": ("o", "-"), "optimised": ("s", "-")}
_PEER_MARKERS = ("^", "v", "D", "P", "X", "*", "h", "<", ">", "p", "d", "8")

class Adapter:
    """One implementation of one kernel (see the module docstring).

    Class attributes a concrete adapter sets: ``name`` (the implementation, unique within its
    kernel), ``role`` (``naive``, ``optimised`` or ``peer``), ``note`` (one line: what it runs),
    and where they differ from the defaults ``requires`` (optional third-party import names),
    ``backends`` and ``scales``. The family (an abstract subclass) sets ``kernel`` and
    ``description`` and implements ``setup``, ``check`` and the work model.
    """

    kernel: ClassVar[str] = ""
    description: ClassVar[str] = ""
    name: ClassVar[str] = ""
    role: ClassVar[str] = "peer"
    note: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    backends: ClassVar[tuple[str, ...]] = ("cpu",)
    scales: ClassVar[tuple[str, ...]] = SCALES
    flops_dtype: ClassVar[str] = "float64"
    roof: ClassVar[str] = "gemm"
    """``"scatter"`` for sparse products bound by random accumulation (see ``Case.roof``)."""
    checked: ClassVar[bool] = True
    """``False`` when the result is not the family's function (e.g. a product without top-k)."""
    same_function: ClassVar[bool] = True
    """``False`` for a peer computing a different function (compared on quality): its check
    verifies invariants only and its verdict is ``n/a``, never ``equal``."""
    install_note: ClassVar[str] = ""
    """Where ``requires`` is known not to install beside this project: the pip error, one line."""
    worker_env: ClassVar[dict[str, str]] = {}
    """Environment the worker process needs from its start (see ``Case.worker_env``)."""

    def __init__(self, backend: str = "cpu") -> None:
        if backend not in self.backends:
            raise ValueError(f"{self.kernel}/{self.name}: backend {backend!r} not in "
                             f"{self.backends}")
        self.backend = backend

    # -- what every implementation provides ---------------------------------------------------
    def setup(self, ctx, scale: str) -> Any:
        """Build the (typed) state the timed call needs; not timed."""
        raise NotImplementedError

    def run(self, state: Any) -> Any:
        """The timed call."""
        raise NotImplementedError

    def check(self, ctx, state: Any, result: Any) -> Verdict | None:
        """Compare ``result`` with the family's reference (run once, before timing)."""
        return None

    def memory_estimate(self, spec) -> int:
        """Bytes the case needs at a scale's shape (a ``ScaleSpec``); over budget -> skipped."""
        return 0

    def extra(self, state: Any, result: Any) -> dict:
        return {}

    def teardown(self, state: Any) -> None:
        """Release what ``setup`` started (a cluster); called once the case is done with."""

    # work model: ``None`` where not meaningful
    def flops(self, state: Any) -> float | None:
        return None

    def dense_flops(self, state: Any) -> float | None:
        return None

    def bytes(self, state: Any) -> float | None:
        return None

    def examples(self, state: Any) -> float | None:
        return None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this implementation cannot run here although ``requires`` is installed (e.g. no
        JVM for Spark), or ``None``; checked before setup, a reason makes the case skipped."""
        return None

    # -- derived -------------------------------------------------------------------------------
    @classmethod
    def missing(cls) -> list[str]:
        """The optional packages this adapter needs that cannot be found here."""
        return optional.missing(cls.requires)

    @classmethod
    def skip_reason(cls) -> str | None:
        """Why this adapter cannot run here for want of a package (None when it can)."""
        return optional.skip_reason(cls.requires, cls.install_note)

    @classmethod
    def version(cls) -> str:
        """The version of what is timed: the peer library's, else recsys_fast's (for asv)."""
        return optional.version_of(cls.requires)

    def case(self) -> Case:
        """This adapter as the runner's :class:`~recsys_fast.harness.cases.registry.Case` record."""

        def given(method: str):
            own = getattr(type(self), method)
            return None if own is getattr(Adapter, method) else getattr(self, method)

        return Case(kernel=self.kernel, impl=self.name, backend=self.backend, setup=self.setup,
                    run=self.run,
                    check=given("check") if self.checked and self.role != "naive" else None,
                    memory_estimate=self.memory_estimate, flops=given("flops"),
                    examples=given("examples"), dense_flops=given("dense_flops"),
                    bytes=given("bytes"), flops_dtype=self.flops_dtype, roof=self.roof, requires=self.requires,
                    extra=given("extra"), scales=self.scales, note=self.note, role=self.role,
                    install_note=self.install_note, worker_env=dict(self.worker_env),
                    teardown=given("teardown"), unavailable=type(self).unavailable)


def concrete(family: type[Adapter]) -> list[type[Adapter]]:
    """Every concrete implementation of a family, in definition order (naive, optimised first)."""
    found: list[type[Adapter]] = []
    stack = list(family.__subclasses__())
    while stack:
        cls = stack.pop(0)
        if cls.name:
            found.append(cls)
        stack[0:0] = cls.__subclasses__()
    return sorted(found, key=lambda c: ROLES.index(c.role))


def validate(cls: type[Adapter]) -> None:
    """Raise ``TypeError`` naming what a concrete adapter class gets wrong."""
    where = f"adapter {cls.__module__}.{cls.__qualname__}"
    if not cls.kernel or not cls.name:
        raise TypeError(f"{where}: kernel and name must be set")
    if cls.role not in ROLES:
        raise TypeError(f"{where}: role {cls.role!r} not in {ROLES}")
    bad = [b for b in cls.backends if b not in BACKENDS]
    if bad:
        raise TypeError(f"{where}: unknown backends {bad}; valid: {BACKENDS}")
    bad = [s for s in cls.scales if s not in ALL_SCALES]
    if bad:
        raise TypeError(f"{where}: unknown scales {bad}; valid: {ALL_SCALES}")
    if cls.role != "peer" and cls.name != cls.role:
        raise TypeError(f"{where}: the {cls.role} implementation is named {cls.role!r}")
    for method in ("setup", "run"):
        if getattr(cls, method) is getattr(Adapter, method):
            raise TypeError(f"{where}: {method}() not implemented")


def cases_of(families: Iterable[type[Adapter]]) -> list[Case]:
    """One case per (adapter, backend) of every family, in family then adapter order."""
    out = []
    for family in families:
        for cls in concrete(family):
            validate(cls)
            out += [cls(backend).case() for backend in cls.backends]
    return out


def styles(impls: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Plot marker and line style per implementation: ours solid, peers dashed."""
    out = dict(MARKERS)
    peers = [i for i in impls if i not in MARKERS]
    for n, impl in enumerate(peers):
        out[impl] = (_PEER_MARKERS[n % len(_PEER_MARKERS)], "--")
    return out
