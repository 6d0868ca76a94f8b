"""The strategies of ``cosine_topk`` as small classes, each with its own knobs.

- :class:`Sparse` (``form``): numba SpGEMM with a fused top-k select, CPU only
  (:mod:`._topk_sparse`).
- :class:`Dense` (``block_rows``, ``tf32``, ``bf16``): square blocks of ``X @ X.T`` by GEMM
  (:mod:`._topk_dense`), on TF32 or bfloat16 tensor cores where asked and exact.
- :class:`Spmm` and :class:`Spgemm` (``block_rows``): row blocks with X kept sparse.
- :class:`Auto` (any of those knobs, each applied when a strategy that takes it runs): the rule
  of :mod:`._topk_auto`.

``cosine_topk(X, k, strategy=Dense(block_rows=512))`` and ``cosine_topk(X, k,
strategy="dense", block_rows=512)`` are the same call (:func:`strategy_for`). A knob that a
strategy does not take is an error, never ignored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from recsys_fast.backend import Backend, bf16_exact
from recsys_fast.errors import MemoryBudgetError
from recsys_fast.kernels import _topk_auto
from recsys_fast.kernels._topk_dense import dense_fits, dense_topk, tf32_exact
from recsys_fast.kernels._topk_sparse import check_form, sparse_topk
from recsys_fast.kernels.core import blas_limits, check_block_rows
from recsys_fast.memory import dense_bytes


@dataclass(frozen=True)
class Job:
    """One top-k call as every strategy reads it: the canonical X, its normalised copy, k,
    self, numba threads, the BLAS thread limit (None: leave BLAS as it is) and the backend."""

    X: Any
    Xn: Any
    k: int
    include_self: bool
    threads: int
    blas_threads: int | None
    be: Backend


@dataclass(frozen=True)
class Strategy:
    """A top-k strategy: :meth:`check` refuses what it cannot run before any work,
    :meth:`run` returns ``(CSR result, the name of what ran)``."""

    name: ClassVar[str] = ""

    @classmethod
    def knob_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def check(self, job: Job) -> None:
        """ValueError for an input or backend this strategy refuses."""

    def run(self, job: Job) -> tuple[Any, str]:
        raise NotImplementedError


def _blas(job: Job):
    if job.be.host and job.blas_threads is not None:
        return blas_limits(job.blas_threads)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Sparse(Strategy):
    """numba Gustavson SpGEMM with a dense accumulator and a top-k select (CPU only).

    ``form``: ``"blocked"`` (each pair once, rows in blocks sharing their column loads),
    ``"rows"`` (every row in full, selected where computed) or ``"auto"`` (the faster on the
    input, raced; :mod:`._topk_sparse`). Every form returns the same values."""

    name: ClassVar[str] = "sparse"
    form: str = "auto"

    def __post_init__(self):
        check_form(self.form)

    def check(self, job: Job) -> None:
        if not job.be.host:
            raise ValueError("strategy='sparse' is CPU-only (numba); use 'dense' on the GPU")

    def run(self, job: Job) -> tuple[Any, str]:
        return (sparse_topk(job.Xn, job.k, job.include_self, job.threads, self.form),
                self.name)


@dataclass(frozen=True)
class _Blocked(Strategy):
    block_rows: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "block_rows", check_block_rows(self.block_rows))


@dataclass(frozen=True)
class _TensorCoreKnobs(_Blocked):
    tf32: bool | None = None
    bf16: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.tf32 not in (None, True, False):
            raise TypeError(f"tf32 must be True, False or None, got {self.tf32!r}")
        if self.bf16 not in (True, False):
            raise TypeError(f"bf16 must be True or False, got {self.bf16!r}")

    def check(self, job: Job) -> None:
        if self.tf32 and job.be.host:
            raise ValueError("tf32=True needs the GPU backend (TF32 is a tensor-core mode)")
        if self.bf16:
            if job.be.host or job.Xn.dtype != np.float32:
                raise ValueError("bf16=True needs the GPU backend and dtype float32")
            if not bf16_exact(job.X.data):
                raise ValueError("bf16=True refused: some values of X are not exact in bfloat16 "
                                 "(8-bit significand), so the result would not be "
                                 "float32-accurate")


@dataclass(frozen=True)
class Dense(_TensorCoreKnobs):
    """Square GEMM blocks of ``X @ X.T``, I <= J only; needs a dense copy of X.

    ``tf32`` (GPU, float32): multiply on TF32 tensor cores; default when every value of X is
    exact in TF32. ``bf16`` (GPU, float32, values exact in bfloat16): bfloat16 products with
    float32 accumulation."""

    name: ClassVar[str] = "dense"

    def run(self, job: Job) -> tuple[Any, str]:
        Xn, be = job.Xn, job.be
        if not dense_fits(Xn, be):
            n, m = Xn.shape
            raise MemoryBudgetError(f"dense copy of X ({n}x{m}) for strategy='dense' "
                                    "(use 'auto' or 'spmm')", dense_bytes((n, m), Xn.dtype),
                                    be.free_bytes() // be.dense_share)
        plan = "dense"
        if not be.host and Xn.dtype == np.float32:
            tf32 = self.tf32 if self.tf32 is not None else tf32_exact(job.X)
            plan = "dense-bf16" if self.bf16 else "dense-tf32" if tf32 else "dense"
        with _blas(job):
            out, tf32_on = dense_topk(Xn, job.k, job.include_self, self.block_rows, be, plan,
                                      job.X)
        return out, "dense-tf32" if tf32_on else plan if plan == "dense-bf16" else "dense"


@dataclass(frozen=True)
class Spmm(_Blocked):
    """Row blocks of ``X @ X.T`` as sparse x dense products (cuSPARSE SpMM on the GPU)."""

    name: ClassVar[str] = "spmm"

    def run(self, job: Job) -> tuple[Any, str]:
        with _blas(job):
            out, _ = dense_topk(job.Xn, job.k, job.include_self, self.block_rows, job.be,
                                self.name)
        return out, self.name


@dataclass(frozen=True)
class Spgemm(Spmm):
    """Row blocks as sparse x sparse products, densified: for very many features."""

    name: ClassVar[str] = "spgemm"


@dataclass(frozen=True)
class Auto(_TensorCoreKnobs):
    """The rule of :mod:`._topk_auto`; its knobs pass to the strategy it picks when that
    strategy takes them."""

    name: ClassVar[str] = "auto"
    form: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        check_form(self.form)

    def pick(self, name: str) -> Strategy:
        cls = BY_NAME[name]
        return cls(**{f: getattr(self, f) for f in cls.knob_names()})

    def run(self, job: Job) -> tuple[Any, str]:
        if job.be.host:
            used, out = _topk_auto.auto_cpu(job.Xn, job.k, job.include_self, job.threads,
                                            self.form)
            if out is not None:
                return out, used
        else:
            used = _topk_auto.choose(job.Xn, job.k, job.include_self, job.threads, job.be)
        return self.pick(used).run(job)


BY_NAME: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Auto, Sparse, Dense, Spmm, Spgemm)}
STRATEGIES = tuple(BY_NAME)


def strategy_for(strategy: str | Strategy, **knobs: Any) -> Strategy:
    """The strategy object for ``strategy`` (a name or a :class:`Strategy`) and the knobs given
    beside it (None or False: not given). ValueError for an unknown name, a knob the strategy
    does not take, or knobs given beside a strategy object (they belong on the object)."""
    given = {name: v for name, v in knobs.items() if v is not None and v is not False}
    if isinstance(strategy, Strategy):
        if given:
            raise ValueError(f"{', '.join(given)} given beside strategy={strategy!r}: set it on "
                             "the strategy object")
        return strategy
    if not isinstance(strategy, str) or strategy not in BY_NAME:
        raise ValueError(f"strategy must be one of {STRATEGIES} or a Strategy, got {strategy!r}")
    cls = BY_NAME[strategy]
    bad = [name for name in given if name not in cls.knob_names()]
    if bad:
        raise ValueError(f"{', '.join(bad)} does not apply to strategy={strategy!r} "
                         f"(it takes: {', '.join(cls.knob_names()) or 'none of these'})")
    return cls(**given)

