"""What the numbers were measured on: hardware, software, BLAS threads, GEMM peak, git state.

No absolute paths are recorded (results files are committed): library files are reduced to
their base names.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

from recsys_fast import backend as _backend
from recsys_fast.memory import cpu_model

LIBRARIES = ("recsys-fast", "numpy", "scipy", "pandas", "scikit-learn", "tensorflow", "keras",
             "numba", "threadpoolctl", "matplotlib", "cupy-cuda12x", "cupy", "asv",
             "pytest-benchmark")
"""Always recorded; every peer library an adapter requires is added (:func:`libraries`)."""
THREAD_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMBA_NUM_THREADS", "RECSYS_FAST_MEMORY_BUDGET")
ENV_MACHINE_ID = "RECSYS_FAST_MACHINE_ID"
ENV_TRIAD_BYTES = "RECSYS_FAST_TRIAD_BYTES"  # size of each triad array (default: see below)
REPO = Path(__file__).resolve().parents[3]


def machine_info() -> dict:
    """CPU model, cores, RAM, OS and the GPU (``recsys_fast.backend.device_info``)."""
    return {
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": int(psutil.virtual_memory().total),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "gpu": _backend.device_info(),
    }


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu|processor|@.*$", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def machine_id(info: dict | None = None) -> str:
    """A stable folder name for a machine: ``$RECSYS_FAST_MACHINE_ID`` or derived from the
    hardware (CPU model, cores, RAM, GPU) so container hostnames do not scatter results."""
    if os.environ.get(ENV_MACHINE_ID):
        return _slug(os.environ[ENV_MACHINE_ID])
    info = info or machine_info()
    parts = [_slug(info["cpu_model"]), f"{info['cores_logical']}c",
             f"{round(info['ram_bytes'] / 2**30)}g"]
    gpu = (info.get("gpu") or {}).get("gpu")
    if gpu:
        parts.append(_slug(gpu))
    return "-".join(parts)


def libraries() -> list[str]:
    """:data:`LIBRARIES` plus the distributions the registered adapters require."""
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.optional import distribution

    peers = [distribution(name) for case in default_registry() for name in case.requires]
    return list(dict.fromkeys([*LIBRARIES, *peers]))


def library_versions() -> dict:
    out = {"python": sys.version.split()[0], "implementation": platform.python_implementation()}
    for name in libraries():
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def blas_info() -> list[dict]:
    """threadpoolctl's view of the BLAS/OpenMP pools (library file names only)."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture")
    out = []
    for pool in threadpool_info():
        row = {k: pool.get(k) for k in keep if k in pool}
        if pool.get("filepath"):
            row["file"] = os.path.basename(pool["filepath"])
        out.append(row)
    return out


def thread_env() -> dict:
    return {k: os.environ[k] for k in THREAD_ENV if k in os.environ}


def git_info(repo: Path = REPO) -> dict | None:
    """Commit, dirty flag and, for a dirty tree, the SHA-256 of ``git diff HEAD`` (so two runs
    of the same uncommitted change can be recognised) of the checkout the package runs from
    (``None`` outside git). Untracked files are ignored: they are not part of the package."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD"], cwd=repo, capture_output=True,
                              timeout=30, check=True).stdout if dirty else b""
    except (OSError, subprocess.SubprocessError):
        return None
    out = {"commit": commit, "dirty": bool(dirty)}
    if dirty:
        out["diff_sha256"] = hashlib.sha256(diff).hexdigest()
    return out


def _llc_bytes() -> int:
    """Size of the largest CPU cache (sysfs), or 32 MiB when unknown."""
    from recsys_fast.memory import _parse_size  # sysfs writes sizes as "491520K"

    best = 0
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            best = max(best, _parse_size(f.read_text()))
        except (OSError, ValueError):
            continue
    return best or (32 << 20)


def memory_bandwidth(rounds: int = 5, n: int | None = None) -> dict:
    """STREAM-style triad ``a = b + s * c`` (float64) on arrays well beyond the last-level
    cache (2x, clamped to 64-512 MiB each; both sizes are recorded), all cores (numba
    ``prange``; numpy's two-pass fallback is counted by its real traffic). GB/s counts 24 bytes per element (read b, c; write a), as STREAM does; the median
    of ``rounds`` after a warm-up."""
    llc = _llc_bytes()
    if n is None and os.environ.get(ENV_TRIAD_BYTES):
        from recsys_fast.memory import parse_size_env

        n = max(1024, parse_size_env(ENV_TRIAD_BYTES) // 8)
    # 2x the LLC per array, within [64 MiB, 512 MiB]: VMs may report the host's whole L3
    n = n or min(max(2 * llc, 64 << 20), 512 << 20) // 8
    b, c = np.full(n, 1.0), np.full(n, 2.0)
    a = np.zeros(n)
    from recsys_fast.harness.run._triad import triad

    method, per_elem = "numba prange triad", 24
    t = _median_time(lambda: triad(a, b, c, 3.0), rounds)
    return {"cpu_triad_gbytes_per_s": per_elem * n / t / 1e9, "n": int(n),
            "array_bytes": int(n * 8), "llc_bytes": int(llc), "rounds": rounds,
            "method": method}


def _l2_bytes() -> int:
    """Size of cpu0's level-2 cache (sysfs), or 512 KiB when unknown."""
    from recsys_fast.memory import _parse_size

    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (d / "level").read_text().strip() == "2":
                return _parse_size((d / "size").read_text())
        except (OSError, ValueError):
            continue
    return 512 << 10


def scatter_rate(rounds: int = 5, updates: int = 1 << 24) -> dict:
    """Random scatter-add rate (GUPS-style, float32 values, int32 indices), every thread
    into its own accumulator: one half the L2 size (the sparse top-k kernel's per-thread
    accumulator when it fits) and one four times the last-level cache, out of cache. The
    ceiling of a sparse kernel's multiply-adds: updates per second, the median of ``rounds``
    after a warm-up."""
    import numba

    from recsys_fast.harness.run._scatter import scatter

    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    out: dict = {"threads": threads, "updates": int(updates), "rounds": rounds,
                 "method": "numba prange scatter-add, one float32 accumulator per thread"}
    for name, nbytes in (("l2", _l2_bytes() // 2), ("dram", 4 * _llc_bytes())):
        size = max(1024, nbytes // 4)
        acc = np.zeros((threads, size), dtype=np.float32)
        idx = rng.integers(0, size, updates, dtype=np.int32)
        val = np.ones(updates, dtype=np.float32)
        reps = 1 if name == "dram" else 4
        t = _median_time(lambda acc=acc, idx=idx, val=val, reps=reps: scatter(acc, idx, val, reps),
                         rounds)
        out[f"cpu_scatter_{name}_updates_per_s"] = updates * reps / t
        out[f"{name}_accumulator_bytes"] = int(size * 4)
        del acc, idx, val
    return out


def gpu_memory_bandwidth(rounds: int = 5, n: int = 1 << 28) -> dict:
    """Device triad on ``n`` float32 elements (3 GiB moved per call), synchronised."""
    be = _backend.get_backend("gpu")
    xp = be.xp
    b = xp.ones(n, dtype=xp.float32)
    c = xp.ones(n, dtype=xp.float32)
    a = xp.empty_like(b)

    def run():
        xp.add(b, c * xp.float32(3.0), out=a)  # cupy fuses nothing here: 2 kernels, 20 B/elem
        be.sync()

    return {"gpu_triad_gbytes_per_s": 20 * n / _median_time(run, rounds) / 1e9, "gpu_n": n}


def _median_time(run, rounds: int) -> float:
    """Median seconds of ``run()`` over ``rounds`` calls after one warm-up call (thread pool
    start, page faults, cuBLAS handles); ``run`` synchronises a device itself."""
    run()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _gemm_gflops(a, b, rounds: int, sync=lambda: None) -> float:
    def run():
        a @ b
        sync()

    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / _median_time(run, rounds) / 1e9


def gemm_peak(n: int = 2048, rounds: int = 3, gpu_n: int = 8192) -> dict:
    """Measured matmul throughput (GFLOP/s, median of ``rounds``) for float32 and float64 on
    this CPU, and on the GPU when one is usable (``gpu_n``-sized, float32 with and without
    TF32): the ceiling dense kernels are judged against."""
    from recsys_fast.backend import tf32_matmul

    out: dict = {"n": n, "rounds": rounds}
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        a, b = (rng.random((n, n), dtype=dt) for _ in range(2))
        out[f"cpu_{np.dtype(dt).name}_gflops"] = _gemm_gflops(a, b, rounds)
    if _backend.gpu_available() and not _backend.is_simulated(_backend.get_backend("gpu")):
        be = _backend.get_backend("gpu")
        out["gpu_n"] = gpu_n
        for dt in (np.float32, np.float64):
            a, b = (be.xp.asarray(rng.random((gpu_n, gpu_n), dtype=dt)) for _ in range(2))
            out[f"gpu_{np.dtype(dt).name}_gflops"] = _gemm_gflops(a, b, rounds, be.sync)
            if dt == np.float32:
                with tf32_matmul(be) as on:
                    if on:
                        out["gpu_tf32_gflops"] = _gemm_gflops(a, b, rounds, be.sync)
            del a, b
    return out


def limits(gemm_n: int = 2048, gemm_rounds: int = 3) -> dict:
    """The machine's measured ceilings: ``gemm_peak`` and ``bandwidth`` (CPU triad and scatter-add
    rates, and the GPU's triad when a real one is usable)."""
    peak = gemm_peak(n=gemm_n, rounds=gemm_rounds)
    bw = memory_bandwidth()
    bw["scatter"] = scatter_rate()
    if _backend.gpu_available() and not _backend.is_simulated(_backend.get_backend("gpu")):
        bw.update(gpu_memory_bandwidth())
    return {"gemm_peak": peak, "bandwidth": bw}


def environment(gemm_n: int | None = 2048, gemm_rounds: int = 3) -> dict:
    """Everything a results file records about where it ran: ``machine``, ``machine_id``,
    ``software``, ``blas``, ``thread_env``, ``git`` and, unless ``gemm_n`` is None, the
    ``gemm_peak`` and memory ``bandwidth`` measured now. One place for the harness, the GPU
    runner and the studies."""
    info = machine_info()
    env = {
        "machine": info,
        "machine_id": machine_id(info),
        "software": library_versions(),
        "blas": blas_info(),
        "thread_env": thread_env(),
        "git": git_info(),
    }
    if gemm_n is not None:
        env.update(limits(gemm_n=gemm_n, gemm_rounds=gemm_rounds))
    return env
