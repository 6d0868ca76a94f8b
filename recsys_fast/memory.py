"""Memory guard: estimate an allocation and refuse it before the OS kills the process."""

from __future__ import annotations

import os

import numpy as np

from recsys_fast.errors import MemoryBudgetError

ENV_BUDGET = "RECSYS_FAST_MEMORY_BUDGET"  # bytes, or with a suffix: 8G, 512M


def _parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text and text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(float(text))


def available_bytes() -> int:
    """Bytes this process may still allocate: the env budget if set, else 90% of available RAM."""
    env = os.environ.get(ENV_BUDGET)
    if env:
        try:
            return _parse_size(env)
        except ValueError as exc:
            raise ValueError(f"{ENV_BUDGET}={env!r} is not a size like 8G or 512M") from exc
    try:
        import psutil

        return int(psutil.virtual_memory().available * 0.9)
    except ImportError:  # pragma: no cover - psutil is a dependency
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages * 0.9)


def dense_bytes(shape: tuple[int, ...], dtype=np.float64) -> int:
    """Bytes of a dense array of ``shape`` and ``dtype``."""
    return int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize


def check_memory(what: str, needed: int, available: int | None = None) -> None:
    """Raise :class:`MemoryBudgetError` if ``needed`` bytes exceed what is available."""
    avail = available_bytes() if available is None else int(available)
    if needed > avail:
        raise MemoryBudgetError(what, needed, avail)
