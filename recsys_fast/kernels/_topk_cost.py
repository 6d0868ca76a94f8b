"""What the CPU ``dense`` strategy of ``cosine_topk`` costs on this machine: a model whose rates
are measured once per machine and thread count, then cached on disk.

The model is linear in the work the dense code does (:func:`dense_work`): the GEMM
multiply-adds of the pair blocks on and above the diagonal, the ``n**2`` entries of S each
selected once, the candidates of each row block merged (``n * p * k`` for ``p`` column
blocks), the dense copy of X (``n * m``) and a fixed cost per call. Its coefficients come from
timing whole dense calls on seeded random inputs of several shapes and ``k`` and fitting them by
non-negative least squares. The shapes are timed in :data:`CAL_ROUNDS` interleaved rounds (each
round runs every shape once) and each keeps its fastest call: on a shared VM a slow minute
slows every call in it, and a fit to one slow minute's medians would be kept for
:data:`MAX_AGE_DAYS` (one such fit read 20-35 % above the quiet machine's dense calls, so auto
kept ``sparse`` where ``dense`` was up to that much faster). About ten seconds, once.

The fit is kept in ``<cache>/calibration/`` (the data cache, :func:`recsys_fast.data.cache_dir`)
under a key of the CPU model, the thread count, the BLAS library and the versions of numpy and
numba: every later process on the machine reads the same rates, so the same input gets the
same estimate. It is measured again when the key changes or the file is older than
:data:`MAX_AGE_DAYS`, or when it cannot be read.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys_fast.memory import cpu_model

CACHE_VERSION = 4
MAX_AGE_DAYS = 30
CAL_ROUNDS = 5
FEATURES = ("gemm_madds", "selected_entries", "merged_candidates", "densified_entries", "call")
# Calibration inputs (rows, features, k): 1 to 8 pair blocks a side, narrow to wide rows
# (wide ones set the GEMM and densify rates), k over the range auto decides for.
_CAL_RUNS = ((512, 256, 10), (512, 4096, 100), (1024, 8192, 10), (1536, 256, 10),
             (1536, 1024, 100), (3072, 256, 100), (3072, 2048, 10), (4096, 4096, 100),
             (6144, 512, 10))


def dense_work(n: int, m: int, k: int, block: int) -> np.ndarray:
    """The work of one dense call in the units of :data:`FEATURES` (``block``: the side of the
    square pair blocks, ``_topk_dense.pair_block``)."""
    sizes = [min(block, n - s) for s in range(0, n, block)]
    p = len(sizes)
    sq = sum(b * b for b in sizes)
    pairs = (sum(sizes) ** 2 + sq) / 2  # entries of the blocks on and above the diagonal
    return np.array([pairs * m, float(n) * n, float(n) * p * min(k, n), float(n) * m, 1.0])


def cache_key(n_threads: int) -> dict:
    """What the rates depend on: a cached fit with another key is measured again."""
    import numba
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}".strip()
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"version": CACHE_VERSION, "cpu": cpu_model(), "cpus": os.cpu_count(),
            "n_threads": int(n_threads), "blas": sorted(blas), "numpy": np.__version__,
            "numba": numba.__version__}


def _cache_path(key: dict) -> Path:
    import hashlib

    from recsys_fast.data import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "calibration" / f"cosine_topk_dense-{digest}.json"


def _read(path: Path, key: dict) -> np.ndarray | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        fresh = time.time() - float(rec["measured_at"]) < MAX_AGE_DAYS * 86400
        coef = np.asarray(rec["coefficients"], dtype=np.float64)
        if rec["key"] == key and fresh and coef.shape == (len(FEATURES),) and \
                np.isfinite(coef).all() and (coef >= 0).all():
            return coef
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def fit(rows: list[np.ndarray], seconds: list[float]) -> np.ndarray:
    """Non-negative coefficients of :data:`FEATURES`, fitted to relative error (each run
    weighs alike, whatever its length)."""
    from scipy.optimize import nnls

    A = np.asarray(rows, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    scale = A.max(axis=0)
    scale[scale == 0] = 1
    coef, _ = nnls((A / scale) / t[:, None], np.ones_like(t))
    return coef / scale


def calibrate(n_threads: int, prepare: Callable[[int, int, int, int], Callable[[], float]],
              block: Callable[[int], int]) -> dict:
    """Time the calibration shapes and fit the model. ``prepare(n, m, k, n_threads)`` builds
    one shape's input and returns a call that runs one dense call on it and returns its
    seconds; each is called once untimed, then :data:`CAL_ROUNDS` rounds over all shapes, and
    each shape keeps its fastest round. ``block(n)``: the pair block side for n rows."""
    calls = [prepare(n, m, k, n_threads) for n, m, k in _CAL_RUNS]
    for call in calls:
        call()  # warm: numba's compile or cache load, first-touch pages
    times = [[call() for call in calls] for _ in range(CAL_ROUNDS)]
    rows, seconds, runs = [], [], []
    for i, (n, m, k) in enumerate(_CAL_RUNS):
        s = min(t[i] for t in times)
        rows.append(dense_work(n, m, k, block(n)))
        seconds.append(s)
        runs.append({"n": n, "m": m, "k": k, "seconds": s,
                     "rounds_s": [t[i] for t in times]})
    coef = fit(rows, seconds)
    for r, row in zip(runs, rows, strict=True):
        r["modelled"] = float(row @ coef)
    return {"coefficients": coef.tolist(), "features": list(FEATURES), "runs": runs}


@functools.lru_cache(maxsize=8)
def _coefficients_cached(n_threads: int, prepare, block) -> tuple[float, ...]:
    from recsys_fast.data.manifest import write_json_atomic

    key = cache_key(n_threads)
    path = _cache_path(key)
    coef = _read(path, key)
    if coef is None:
        rec = calibrate(n_threads, prepare, block)
        coef = np.asarray(rec["coefficients"])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {"key": key, "measured_at": time.time(), **rec})
        except OSError:
            pass  # a read-only cache: this process keeps its own measurement
    return tuple(float(c) for c in coef)


def coefficients(n_threads: int, prepare, block) -> np.ndarray:
    """The dense model's coefficients for ``n_threads``: from the cache file, else measured
    (and cached); once per process."""
    return np.asarray(_coefficients_cached(int(n_threads), prepare, block))


def dense_seconds(n: int, m: int, k: int, n_threads: int, prepare, block) -> float:
    """Modelled seconds of one CPU ``dense`` call on an n x m input."""
    return float(dense_work(n, m, k, block(n)) @ coefficients(n_threads, prepare, block))
