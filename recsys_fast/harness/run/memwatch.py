"""Peak resident memory of a block of code, cheaply.

:class:`MemoryProbe` is what the runner records per case, around its first warm-up call (the
call after the checked one, so JIT compilation and one-time caches are not counted): it runs
the garbage collector, hands the C heap's free pages back to the OS (glibc ``malloc_trim(0)``)
and resets the kernel's high-water mark; the peak is then the high-water mark above that
baseline. Without the trim, memory freed by an earlier case of the same worker (or by the
case's own setup) is reused without raising RSS, and a kernel that allocates its whole result
would read ``0 B``. numpy, BLAS and numba allocations are all seen (it is the process's RSS).

tracemalloc slows numpy-heavy code several-fold and misses BLAS/numba allocations, so we watch
the process RSS instead. On Linux the kernel keeps the peak (``VmHWM``) and lets a process reset
it (write ``5`` to ``/proc/self/clear_refs``): exact and free. Elsewhere a daemon thread samples
RSS with psutil every ``interval`` seconds (it may miss a spike shorter than the interval).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import threading
from pathlib import Path

import psutil

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _vm_hwm() is not None


def current_rss() -> int:
    return int(psutil.Process().memory_info().rss)


class PeakRSS:
    """Context manager: ``peak`` (bytes, absolute) and ``delta`` (peak - RSS at entry).

    ``method`` is ``"vmhwm"`` (kernel-tracked peak) or ``"sampling"`` (psutil thread).
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.start = 0
        self.peak = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.start = current_rss()
        self.peak = self.start
        if _reset_hwm():
            self.method = "vmhwm"
        else:
            self.method = "sampling"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        else:
            self.peak = max(self.peak, _vm_hwm() or 0)
        self.peak = max(self.peak, current_rss())

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.start)


@functools.cache
def _libc_malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` elsewhere (looked up once)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _malloc_trim() -> bool:
    """Return the heap's free pages to the OS; False when there is no ``malloc_trim``."""
    trim = _libc_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class MemoryProbe(PeakRSS):
    """:class:`PeakRSS` after a collection and a heap trim (see module docstring); ``method`` is
    ``"vmhwm+trim"`` on glibc Linux. ``peak`` and ``delta`` are ints."""

    def __enter__(self) -> MemoryProbe:
        gc.collect()
        trimmed = _malloc_trim()
        super().__enter__()
        if trimmed:
            self.method += "+trim"
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.peak = int(self.peak)
