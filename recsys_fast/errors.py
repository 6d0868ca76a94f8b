"""Exceptions raised on bad input. Every message names the file, line, value or size at fault."""

from __future__ import annotations


class RecsysFastError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""


class DataFormatError(RecsysFastError, ValueError):
    """A data file is malformed. ``path`` and ``line`` (1-based, None when unknown) say where."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class DatasetNotFoundError(RecsysFastError, FileNotFoundError):
    """A data set (or one of its files) is not where it was looked for."""


class DownloadError(RecsysFastError):
    """A download failed or its checksum did not match."""


class MemoryBudgetError(RecsysFastError, MemoryError):
    """An allocation would exceed the memory budget; raised *before* allocating."""

    def __init__(self, what: str, needed: int, available: int):
        self.what = what
        self.needed = int(needed)
        self.available = int(available)
        super().__init__(
            f"{what} needs {format_bytes(needed)} but only {format_bytes(available)} "
            "is available; use a smaller scale or the optimised (sparse/blocked) kernels"
        )


def format_bytes(n: float) -> str:
    """Human-readable size, e.g. ``39.1 GiB``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class BackendUnavailableError(RecsysFastError, RuntimeError):
    """A backend (e.g. ``gpu``) was requested but is not usable here."""


class ConfigError(RecsysFastError, ValueError):
    """An environment variable or option has a value that cannot be used; the message names it."""


class OutputError(RecsysFastError):
    """An output folder cannot be written, or holds files the command did not write."""


class DatasetMismatchError(RecsysFastError, ValueError):
    """A folder holds a different data set from the one asked for; the message names both."""


class OutputDirError(RecsysFastError, OSError):
    """The results folder cannot be written."""
