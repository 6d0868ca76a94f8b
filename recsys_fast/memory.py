"""Memory guard: estimate an allocation and refuse it before the OS kills the process; and the
cores this process may use."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import numpy as np

from recsys_fast.errors import ConfigError, MemoryBudgetError

ENV_BUDGET = "RECSYS_FAST_MEMORY_BUDGET"  # bytes, or with a suffix: 8G, 512M


def _parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional K/M/G/T suffix (powers of 1024).

    Raises
    ------
    ValueError
        Not a number, or not a positive finite size of at least one byte.
    """
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    scale = 1
    if text and text[-1] in mult:
        text, scale = text[:-1], mult[text[-1]]
    value = float(text) * scale
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r} is not a positive finite size")
    return int(value)


def parse_size_env(name: str) -> int:
    """The size in environment variable ``name`` (e.g. ``8G``); :class:`ConfigError` naming the
    variable unless it is a positive finite size."""
    text = os.environ.get(name, "")
    try:
        return _parse_size(text)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}={text!r} is not a positive finite size like 8G or 512M") from None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def available_bytes() -> int:
    """Bytes this process may still allocate: the env budget if set, else 90% of available RAM."""
    env = os.environ.get(ENV_BUDGET)
    if env:
        try:
            return _parse_size(env)
        except (ValueError, OverflowError):
            raise ConfigError(
                f"{ENV_BUDGET}={env!r} is not a positive finite size like 8G or 512M "
                "(unset it to use 90% of the available RAM)"
            ) from None
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
