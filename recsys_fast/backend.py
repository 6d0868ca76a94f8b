"""Array backends: ``cpu`` = numpy + scipy.sparse, ``gpu`` = cupy + cupyx.scipy.sparse.

This is the only module that imports cupy. GPU availability is detected once, lazily: the import
*and* a usable device (a tiny allocation and a kernel launch) must both succeed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.errors import BackendUnavailableError

BACKENDS = ("cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    """A pair of namespaces kernels are written against, plus device helpers."""

    name: str
    xp: ModuleType  # numpy or cupy
    sparse: ModuleType  # scipy.sparse or cupyx.scipy.sparse

    def sync(self) -> None:
        """Block until queued device work is done (a no-op on the CPU)."""
        if self.name == "gpu":
            self.xp.cuda.get_current_stream().synchronize()

    def to_device(self, x: Any) -> Any:
        """Move a numpy array or scipy sparse matrix onto this backend."""
        if self.name == "cpu":
            return to_host(x)
        if scipy.sparse.issparse(x):
            return self.sparse.csr_matrix(x.tocsr())
        if self.sparse.issparse(x):
            return x
        return self.xp.asarray(x)

    def free_bytes(self) -> int:
        """Free memory on the device (GPU) or available RAM (CPU)."""
        if self.name == "gpu":
            free, _total = self.xp.cuda.runtime.memGetInfo()
            pool = self.xp.get_default_memory_pool()
            return int(free + pool.free_bytes())
        from recsys_fast.memory import available_bytes

        return available_bytes()


def to_host(x: Any) -> Any:
    """Return a numpy array / scipy sparse matrix whatever backend ``x`` lives on."""
    if isinstance(x, np.ndarray) or scipy.sparse.issparse(x) or np.isscalar(x):
        return x
    get = getattr(x, "get", None)
    if get is not None:  # cupy arrays and cupyx sparse matrices
        return get()
    return np.asarray(x)


CPU = Backend("cpu", np, scipy.sparse)


@functools.lru_cache(maxsize=1)
def _gpu_probe() -> tuple[Backend | None, str]:
    try:
        import cupy
        import cupyx.scipy.sparse as cusparse
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return None, f"cupy not importable ({type(exc).__name__}: {exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "cupy found no CUDA device"
        a = cupy.arange(8, dtype=cupy.float32)
        float((a * 2).sum())  # a real kernel launch and copy back
    except Exception as exc:
        return None, f"no usable CUDA device ({type(exc).__name__}: {exc})"
    return Backend("gpu", cupy, cusparse), ""


def gpu_available() -> bool:
    """True when cupy imports and a CUDA device runs a kernel."""
    return _gpu_probe()[0] is not None


def gpu_unavailable_reason() -> str:
    """Why the GPU backend is unusable ("" when it is usable)."""
    return _gpu_probe()[1]


def get_backend(name: str | Backend = "cpu") -> Backend:
    """Return the named backend; raise :class:`BackendUnavailableError` if it cannot run."""
    if isinstance(name, Backend):
        return name
    if name == "cpu":
        return CPU
    if name == "gpu":
        gpu, why = _gpu_probe()
        if gpu is None:
            raise BackendUnavailableError(f"backend 'gpu' requested but unavailable: {why}")
        return gpu
    raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")


def device_info() -> dict:
    """GPU name, memory and driver when a GPU is usable, else {'gpu': None, 'reason': ...}."""
    gpu, why = _gpu_probe()
    if gpu is None:
        return {"gpu": None, "reason": why}
    cp = gpu.xp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return {
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "memory_bytes": int(props["totalGlobalMem"]),
        "driver_version": int(cp.cuda.runtime.driverGetVersion()),
        "runtime_version": int(cp.cuda.runtime.runtimeGetVersion()),
        "cupy_version": cp.__version__,
    }
