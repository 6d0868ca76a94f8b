"""Peak resident memory of a block of code, cheaply.

tracemalloc slows numpy-heavy code several-fold and misses BLAS/numba allocations, so we watch
the process RSS instead. On Linux the kernel keeps the peak (``VmHWM``) and lets a process reset
it (write ``5`` to ``/proc/self/clear_refs``): exact and free. Elsewhere a daemon thread samples
RSS with psutil every ``interval`` seconds (it may miss a spike shorter than the interval).
"""

from __future__ import annotations

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
