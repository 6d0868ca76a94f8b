"""Scale shapes, per-scale data cache and naive references shared by the cases of one run.

Scale ``100k`` is the real MovieLens 100K when it can be found (``ml100k=`` path, or
``$RECSYS_FAST_SHARED/ml-100k``), else the synthetic 100k preset; ``tiny`` (smoke tests),
``1m``, ``10m`` and ``25m`` are always synthetic (``recsys_fast.data.synthetic``). A ``shape``
other than ``default`` (:data:`recsys_fast.data.synthetic.SHAPES`: the popularity and activity
laws) makes every in-memory scale synthetic with those laws, 100k included. What was used is
recorded in :attr:`CaseContext.data_sources` and ends up in the results file.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_fast.errors import DatasetNotFoundError, MemoryBudgetError
from recsys_fast.harness.cases.registry import (
    ALL_SCALES,
    OUT_OF_CORE_SCALES,
    Registry,
    SelectionError,
)
from recsys_fast.harness.run import provenance
from recsys_fast.memory import available_bytes

ENV_SHARED = "RECSYS_FAST_SHARED"


@dataclass(frozen=True)
class ScaleSpec:
    """Shape of a scale, known without generating it (memory estimates use it)."""

    name: str
    n_users: int
    n_items: int
    n_ratings: int


def _synthetic_spec(scale: str):
    from recsys_fast.data.synthetic import scale_spec as spec

    return spec(scale)


def check_shape(shape: str) -> str:
    """``shape`` if it names a synthetic shape; SelectionError listing the valid ones."""
    from recsys_fast.data.synthetic import SHAPES

    if shape not in SHAPES:
        raise SelectionError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
    return shape


def scale_spec(scale: str) -> ScaleSpec:
    """Users, items and ratings of a named scale."""
    if scale not in ALL_SCALES:
        raise SelectionError(f"unknown scale {scale!r}; valid: {', '.join(ALL_SCALES)}")
    s = _synthetic_spec(scale)
    return ScaleSpec(scale, int(s.n_users), int(s.n_items), int(s.n_ratings))


class OutOfCoreScaleError(MemoryBudgetError):
    """The ratings of an out-of-core scale were asked for as one in-memory table (a skip)."""

    def __init__(self, scale: str):
        self.what, self.needed, self.available = f"scale {scale}", 0, 0
        Exception.__init__(self, f"scale {scale} is out-of-core: its ratings are never built "
                              "as one table in memory; only cases that read its Parquet folder "
                              "by partition run there")


def find_ml100k(path: str | os.PathLike | None = None) -> Path | None:
    """The real ML-100K folder: ``path`` when given (it must hold ``u.data``: an explicit
    folder that does not is an error, never a silent fall-back to synthetic data), else
    ``$RECSYS_FAST_SHARED/ml-100k`` if it has ``u.data``, else ``None``."""
    if path:
        p = Path(path)
        if not (p / "u.data").is_file():
            raise DatasetNotFoundError(f"--ml100k {str(p)!r} does not hold MovieLens 100K "
                                       "(no u.data there)")
        return p
    if os.environ.get(ENV_SHARED):
        p = Path(os.environ[ENV_SHARED]) / "ml-100k"
        if (p / "u.data").is_file():
            return p
    return None


def _load_real_ml100k(path: Path):
    """ML-100K from ``path``, checked against the release's counts (a cut or padded copy is
    refused, :class:`~recsys_fast.errors.DatasetMismatchError`); a ``data synth`` folder is
    returned as such."""
    from recsys_fast.data import load_ml100k
    from recsys_fast.data.catalogue import check_counts
    from recsys_fast.data.specs import get_spec

    return check_counts(get_spec("ml-100k"), path, load_ml100k(path))


class CaseContext:
    """Per-run state: data cached per scale, naive results kept as references for the checks.

    Parameters
    ----------
    registry
        Used to find the naive case of a kernel when a check needs its reference.
    ml100k
        Folder of the real MovieLens 100K (optional; see module docstring).
    seed
        Seed of the synthetic data.
    budget
        Memory budget in bytes; default :func:`recsys_fast.memory.available_bytes` at each call.
    """

    def __init__(self, registry: Registry | None = None, ml100k: str | os.PathLike | None = None,
                 seed: int = 0, budget: int | None = None, shape: str = "default"):
        self.registry = registry
        self.ml100k = find_ml100k(ml100k)
        self.seed = seed
        self.shape = check_shape(shape)
        self._budget = budget
        self._data: dict[tuple, Any] = {}
        self._refs: dict[tuple[str, str], Any] = {}
        self.data_sources: dict[str, str] = {}
        self.data_provenance: dict[str, dict] = {}  # see .provenance

    def budget(self) -> int:
        return available_bytes() if self._budget is None else int(self._budget)

    def spec(self, scale: str) -> ScaleSpec:
        return scale_spec(scale)

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """Build once per run (until :meth:`clear`); ``key`` should start with the scale."""
        if key not in self._data:
            self._data[key] = build()
        return self._data[key]

    def interactions(self, scale: str):
        """The :class:`~recsys_fast.data.interactions.Interactions` of a scale (cached)."""
        return self.memo((scale, "interactions"), lambda: self._load(scale))

    def _load(self, scale: str):
        scale_spec(scale)
        if scale in OUT_OF_CORE_SCALES:
            raise OutOfCoreScaleError(scale)
        if scale == "100k" and self.ml100k is not None and self.shape == "default":
            inter = _load_real_ml100k(self.ml100k)
            synthetic = bool(inter.meta.get("synthetic"))  # a `recsys-fast data synth` folder
            prov = provenance.files_read("synthetic-100k (ML-100K files)" if synthetic
                                         else "ml-100k", self.ml100k, ["u.data"],
                                         shared=os.environ.get(ENV_SHARED))
            read = f"{prov['path']}: {provenance.file_text(prov['files'][0])}"
            self.data_sources[scale] = (
                "synthetic 100k in ML-100K files (written by `recsys-fast data synth`), not the "
                f"real MovieLens 100K; {read}" if synthetic
                else f"ml-100k (real MovieLens 100K); {read}")
            self.data_provenance[scale] = prov
            return inter
        from recsys_fast.data.synthetic import generate, shaped

        spec = _synthetic_spec(scale)
        if self.shape == "default":
            self.data_sources[scale] = (f"synthetic {scale} (recsys_fast.data.synthetic, "
                                        f"seed {self.seed})")
        else:
            spec = shaped(spec, self.shape)
            self.data_sources[scale] = (f"synthetic {scale}, shape {self.shape} "
                                        f"(recsys_fast.data.synthetic, seed {self.seed})")
        self.data_provenance[scale] = provenance.generated(f"synthetic-{scale}", spec, self.seed)
        return generate(spec, seed=self.seed)

    # -- references ---------------------------------------------------------------------------
    def set_reference(self, kernel: str, scale: str, result: Any) -> None:
        self._refs[(kernel, scale)] = result

    def naive_reference(self, kernel: str, scale: str) -> Any | None:
        """The naive result for ``kernel`` at ``scale``: kept from the naive case if it ran, else
        computed now (not timed) when the naive case is defined at that scale and its memory
        estimate fits the budget; ``None`` otherwise."""
        key = (kernel, scale)
        if key in self._refs:
            return self._refs[key]
        if self.registry is None:
            return None
        try:
            case = self.registry.get(kernel, "naive", "cpu")
        except SelectionError:
            return None
        if scale not in case.scales or case.memory_estimate(self.spec(scale)) > self.budget():
            return None
        self._refs[key] = case.run(case.setup(self, scale))
        return self._refs[key]

    def clear(self, references_only: bool = False) -> None:
        """Drop cached references (and data unless ``references_only``) to free memory."""
        self._refs.clear()
        if not references_only:
            self._data.clear()
            gc.collect()
