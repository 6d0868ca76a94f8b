"""Array backends: ``cpu`` = numpy + scipy.sparse, ``gpu`` = cupy + cupyx.scipy.sparse.

This is the only module that imports cupy. GPU availability is detected once, lazily: the import
*and* a usable device (a tiny allocation and a kernel launch) must both succeed.

``RECSYS_FAST_SIMULATE_GPU=1`` makes ``gpu`` a :class:`SimulatedGPU` instead: numpy and scipy
under the GPU code paths, so the GPU branches of the kernels, the harness's GPU cases and the GPU
check script run (and are tested) on machines without a device. Its results are labelled
simulated and its timings are CPU timings.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError

BACKENDS = ("cpu", "gpu")
SIMULATE_ENV = "RECSYS_FAST_SIMULATE_GPU"


@dataclass(frozen=True)
class Backend:
    """A pair of namespaces kernels are written against, plus device helpers."""

    name: str
    xp: ModuleType  # numpy or cupy
    sparse: ModuleType  # scipy.sparse or cupyx.scipy.sparse

    def __reduce__(self):
        # modules do not pickle: a backend travels by name (e.g. to a dask worker)
        return (get_backend, (self.name,))

    @property
    def host(self) -> bool:
        """Arrays are numpy / scipy objects in this process's memory, where the numba kernels
        run; False for a device (CuPy, and the simulated GPU that stands in for it)."""
        return self.xp is np

    @property
    def dense_share(self) -> int:
        """A dense working copy may take 1/``dense_share`` of :meth:`free_bytes`: a quarter of
        the host's RAM, half of a device's memory (which holds little else)."""
        return 4 if self.host else 2

    def sync(self) -> None:
        """Block until queued device work is done (a no-op on the CPU)."""
        if self.name == "gpu":
            self.xp.cuda.get_current_stream().synchronize()

    def to_device(self, x: Any) -> Any:
        """Move a numpy array or scipy sparse matrix onto this backend."""
        if self.host:
            return to_host(x)
        if scipy.sparse.issparse(x):
            return self.sparse.csr_matrix(x.tocsr())
        if self.sparse.issparse(x):
            return x
        return self.xp.asarray(x)

    def entry_rows(self, indptr: Any) -> Any:
        """Row index (int64) of every stored entry of a CSR matrix with this ``indptr``.

        ``np.repeat`` on the CPU; a ``searchsorted`` on the GPU, since CuPy before 14 rejects
        an array of repeat counts.
        """
        xp = self.xp
        n = int(indptr.shape[0]) - 1
        if self.host:
            return np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr).astype(np.int64))
        nnz = int(indptr[-1])
        pos = xp.arange(nnz, dtype=indptr.dtype)  # same dtype as the sorted array
        return xp.searchsorted(indptr, pos, side="right").astype(xp.int64) - 1

    def dense(self, X: Any, dtype: Any = None) -> Any:
        """C-ordered dense copy of the sparse matrix X in one allocation.

        cupyx's ``toarray()`` builds a column-major array and copies it to row-major, twice the
        memory; on the GPU the entries are scattered into zeros instead.
        """
        dtype = np.dtype(X.dtype if dtype is None else dtype)
        if self.host:
            return X.toarray().astype(dtype, copy=False)
        X = X.tocsr()
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        D = self.xp.zeros(X.shape, dtype=dtype)
        if X.nnz:
            D[self.entry_rows(X.indptr), X.indices] = X.data.astype(dtype)
        return D

    def memory_pool(self) -> Any:
        """CuPy's default memory pool on the GPU; None on the CPU (and the simulated GPU)."""
        get = getattr(self.xp, "get_default_memory_pool", None)
        return get() if get is not None else None

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


class _CupyLikeNumpy(ModuleType):
    """numpy, minus what CuPy lacks or refuses, so the simulated GPU fails where CuPy would.

    Known differences modelled: ``repeat`` with an array of counts (CuPy < 14 raises), and
    ``isneginf`` / ``isposinf`` (missing from older CuPy).
    """

    _MISSING = ("isneginf", "isposinf")

    def __init__(self):
        super().__init__("cupy_like_numpy")

    def __getattr__(self, name: str):
        if name in self._MISSING:
            raise AttributeError(f"the simulated GPU models CuPy without {name!r}")
        return getattr(np, name)

    @staticmethod
    def repeat(a, repeats, axis=None):
        if isinstance(repeats, np.ndarray) and repeats.ndim > 0 and repeats.size > 1:
            raise ValueError("cupy.ndarray cannot be specified as `repeats` argument "
                             "(CuPy < 14; the simulated GPU models it)")
        return np.repeat(a, repeats, axis)


class SimulatedGPU(Backend):
    """A backend named ``gpu`` on numpy / scipy: the GPU branches of the kernels on the CPU.

    It checks the logic of the GPU code paths (block sizing from free memory, the sort-based
    CSR build, the raw-value GEMM with scaling, SpMM blocks), with numpy features CuPy lacks
    refused (:class:`_CupyLikeNumpy`); CuPy's own behaviour still needs a real device. ``free``
    fixes the free memory it reports (default: the CPU's memory budget).
    """

    simulated = True

    def __init__(self, free: int | None = None):
        super().__init__("gpu", _CupyLikeNumpy(), scipy.sparse)
        object.__setattr__(self, "_free", free)

    def __reduce__(self):
        return (SimulatedGPU, (self._free,))

    def sync(self) -> None:
        pass

    def free_bytes(self) -> int:
        return CPU.free_bytes() if self._free is None else int(self._free)


def is_simulated(backend: Backend) -> bool:
    """True for :class:`SimulatedGPU` (numpy under the GPU code paths)."""
    return bool(getattr(backend, "simulated", False))


@functools.lru_cache(maxsize=1)
def _gpu_probe() -> tuple[Backend | None, str]:
    if os.environ.get(SIMULATE_ENV, "") not in ("", "0"):
        return SimulatedGPU(), ""
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


_REGISTERED: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make ``backend=name`` resolve to ``factory()``: a new array driver, a :class:`Backend`
    whose ``xp`` / ``sparse`` namespaces the kernels' array code runs on (numpy-like and
    scipy.sparse-like). ``factory`` may raise :class:`BackendUnavailableError`."""
    if name in BACKENDS or not isinstance(name, str) or not name:
        raise ValueError(f"cannot register backend {name!r}: built-in or not a name")
    _REGISTERED[name] = factory


def unregister_backend(name: str) -> None:
    _REGISTERED.pop(name, None)


def backend_names() -> tuple[str, ...]:
    """Every array backend name: the built-in ones, then the registered ones."""
    return (*BACKENDS, *sorted(_REGISTERED))


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
    if isinstance(name, str) and name in _REGISTERED:
        return _REGISTERED[name]()
    raise ValueError(f"unknown backend {name!r}; valid: {', '.join(backend_names())}")


def device_info() -> dict:
    """GPU name, memory and driver when a GPU is usable, else {'gpu': None, 'reason': ...}."""
    gpu, why = _gpu_probe()
    if gpu is None:
        return {"gpu": None, "reason": why}
    if is_simulated(gpu):
        return {"gpu": "simulated GPU", "simulated": True, "note": "numpy under the GPU code paths"}
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


@contextlib.contextmanager
def tf32_matmul(backend: str | Backend = "gpu", enable: bool = True) -> Iterator[bool]:
    """Let cuBLAS run float32 GEMM on TF32 tensor cores inside the block; yields whether it does.

    CuPy's switch is process-wide (``CUPY_TF32`` read once, or its compute type for float32),
    so the previous compute type is put back on exit. Yields False, changing nothing, on the
    CPU, when ``enable`` is false, on GPUs before compute capability 8.0, or when this CuPy
    lacks the switch.
    """
    name = backend.name if isinstance(backend, Backend) else backend
    if not enable or name != "gpu" or is_simulated(backend):
        yield False
        return
    try:
        import cupy
        from cupy._core import _routines_linalg as lin

        names = {lin.compute_type_to_str(i): i for i in range(16)}
        tf32 = names["COMPUTE_TYPE_TF32"]
        ok = int(cupy.cuda.Device().compute_capability) >= 80
        old = lin.get_compute_type(np.float32)
    except Exception:  # no cupy, no device, or a CuPy without the switch: plain float32
        yield False
        return
    if not ok:
        yield False
        return
    lin.set_compute_type(np.float32, tf32)
    try:
        yield True
    finally:
        lin.set_compute_type(np.float32, old)


BF16_LIBRARIES = ("jax", "torch")
"""Array libraries that give a bfloat16 GEMM with float32 accumulation and output, in the order
tried. CuPy has no bfloat16; the GPU images have PyTorch and JAX. Only this module imports them."""


def bf16_exact(values: Any) -> bool:
    """True when every value survives rounding to bfloat16 (an 8-bit significand): half-star
    ratings and integer counts up to 256 do. A bfloat16 GEMM of such raw values with float32
    accumulation then multiplies exactly: as accurate as a float32 GEMM."""
    xp = np if isinstance(values, np.ndarray) else _array_module(values)
    v32 = values.astype(xp.float32)
    return bool((v32 == values).all()) and not bool((v32.view(xp.uint32) & 0xFFFF).any())


def _array_module(x: Any) -> ModuleType:
    mod = type(x).__module__.split(".")[0]
    return np if mod == "numpy" else __import__(mod)


@functools.lru_cache(maxsize=4)
def bf16_gemm(backend: str = "gpu") -> tuple[Any, str]:
    """``(f, how)``: ``f(A, B)`` returns ``A @ B.T`` in float32 from float32 arrays of this
    backend, the products taken in bfloat16 with float32 accumulation (tensor cores on a GPU of
    compute capability >= 8.0), through JAX (``preferred_element_type=float32``) or PyTorch
    (``torch.mm(..., out_dtype=float32)``, CUDA only), arrays passed by DLPack; ``(None, why)``
    when neither can do it here. Exact only for values :func:`bf16_exact` accepts: callers
    choose it only then. On the simulated GPU and the CPU it runs the libraries' CPU builds
    (tests; no speed is expected there).
    """
    be = get_backend(backend)
    real_gpu = be.name == "gpu" and not is_simulated(be)
    if real_gpu:
        try:
            if int(be.xp.cuda.Device().compute_capability) < 80:
                return None, "bfloat16 tensor cores need compute capability >= 8.0"
        except Exception as exc:  # no device query: treat as unavailable
            return None, f"cannot query the device ({type(exc).__name__})"
    why = []
    for lib in BF16_LIBRARIES:
        try:
            f = _BF16_MAKERS[lib](real_gpu)
        except Exception as exc:  # not installed, or no device support
            why.append(f"{lib}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        return f, lib
    return None, "; ".join(why)


def _bf16_jax(real_gpu: bool):
    # JAX would otherwise take 75 % of the device's memory up front, beside CuPy's pool
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import jax.numpy as jnp

    device = jax.devices("gpu" if real_gpu else "cpu")[0]

    @jax.jit
    def mm(a, b):
        a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
        return jnp.dot(a16, b16.T, preferred_element_type=jnp.float32)

    def f(A, B):
        a = jax.device_put(jnp.from_dlpack(A) if real_gpu else np.asarray(A), device)
        b = jax.device_put(jnp.from_dlpack(B) if real_gpu else np.asarray(B), device)
        out = mm(a, b)
        if real_gpu:
            import cupy

            return cupy.from_dlpack(out)
        return np.array(out)  # a writable host copy (JAX's own buffer is read-only)

    return f


def _bf16_torch(real_gpu: bool):
    import torch

    if not real_gpu:
        raise RuntimeError("torch.mm(out_dtype=float32) for bfloat16 is CUDA-only")

    def f(A, B):
        import cupy

        a = torch.from_dlpack(A).to(torch.bfloat16)
        b = torch.from_dlpack(B).to(torch.bfloat16)
        return cupy.from_dlpack(torch.mm(a, b.T, out_dtype=torch.float32))

    return f


_BF16_MAKERS = {"jax": _bf16_jax, "torch": _bf16_torch}


def block_rows_for(
    bytes_per_row: int,
    backend: str | Backend = "cpu",
    fraction: float = 0.5,
    *,
    n_rows: int | None = None,
    free_bytes: int | None = None,
    min_rows: int = 1,
) -> int:
    """Rows per block so that one block takes at most ``fraction`` of the free memory.

    Blocked kernels (a block of ``X @ X.T``, a block of predictions) call this to size their
    blocks from what the device has free now: RAM on the CPU (the memory budget), device memory
    plus CuPy's pool on the GPU.

    Parameters
    ----------
    bytes_per_row : int
        Bytes one row of the block needs, temporaries included (e.g. ``3 * n * itemsize``).
    backend : "cpu", "gpu" or Backend
        Whose free memory to ask (ignored when ``free_bytes`` is given).
    fraction : float in (0, 1]
        Share of the free memory one block may use; the rest is left for inputs, outputs and
        other blocks in flight.
    n_rows : int, optional
        Total rows: the result never exceeds it (a block is never bigger than the matrix).
    free_bytes : int, optional
        Free memory to assume instead of asking the device (tests, or a caller's own budget).
    min_rows : int, default 1
        Fewest rows worth a block.

    Returns
    -------
    int
        ``clip(floor(fraction * free / bytes_per_row), min_rows, n_rows)``.

    Raises
    ------
    ValueError
        ``bytes_per_row`` or ``min_rows`` not positive, ``fraction`` outside (0, 1], negative
        ``free_bytes`` or ``n_rows``.
    MemoryBudgetError
        Not even ``min_rows`` rows fit in the allowed share of the free memory.
    """
    if isinstance(bytes_per_row, bool) or int(bytes_per_row) != bytes_per_row or bytes_per_row < 1:
        raise ValueError(f"bytes_per_row must be a positive integer, got {bytes_per_row!r}")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if int(min_rows) != min_rows or min_rows < 1:
        raise ValueError(f"min_rows must be a positive integer, got {min_rows!r}")
    if n_rows is not None and (int(n_rows) != n_rows or n_rows < 0):
        raise ValueError(f"n_rows must be a non-negative integer, got {n_rows!r}")
    name = backend.name if isinstance(backend, Backend) else str(backend)
    if free_bytes is None:
        free_bytes = get_backend(backend).free_bytes()
    elif int(free_bytes) != free_bytes or free_bytes < 0:
        raise ValueError(f"free_bytes must be a non-negative integer, got {free_bytes!r}")
    allowed = int(float(fraction) * int(free_bytes))
    rows = allowed // int(bytes_per_row)
    if rows < min_rows:
        raise MemoryBudgetError(
            f"a block of {min_rows} row(s) x {int(bytes_per_row):,} bytes on {name} "
            f"(fraction {fraction} of free memory)",
            int(min_rows) * int(bytes_per_row),
            allowed,
        )
    if n_rows is not None:
        rows = min(rows, max(int(n_rows), int(min_rows)))
    return int(rows)
