"""Manifests: which files a command wrote (sizes + SHA-256), so it never touches anything else.

``recsys-fast data synth`` writes :data:`SYNTH_MARKER` into its output folder, listing the
files it wrote. A folder holding that marker is synthetic data
(:func:`recsys_fast.data.movielens.is_synthetic`), and a later ``data synth`` may rewrite the
files the marker lists, unchanged since, but nothing else without ``--force``.
:func:`recsys_fast.data.download.fetch` records the extracted files of an archive the same way
and checks them before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from recsys_fast.errors import DataFormatError

SYNTH_MARKER = ".recsys-fast-synth.json"
CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def describe_files(folder: Path, names) -> dict[str, dict]:
    """``{name: {"size": bytes, "sha256": hex}}`` for each name (a path relative to ``folder``)."""
    out = {}
    for name in sorted(names):
        p = folder / name
        out[name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def list_files(folder: Path) -> list[str]:
    """Every regular file under ``folder``, as POSIX paths relative to it, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and an atomic rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``; None when there is none.

    Raises
    ------
    DataFormatError
        The file exists but is not a manifest (not JSON, or no ``files`` mapping).
    """
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a readable manifest: {exc}", path=path) from None
    files = obj.get("files") if isinstance(obj, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    ):
        raise DataFormatError("manifest has no valid 'files' mapping", path=path)
    return obj


def changed_files(folder: Path, files: dict[str, dict], *, extra: bool = True) -> list[str]:
    """Names in ``files`` that are missing or differ (size or SHA-256) in ``folder``; with
    ``extra``, also the files present in ``folder`` that ``files`` does not list."""
    bad = []
    for name, want in files.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != want["size"] or sha256_file(p) != want["sha256"]:
            bad.append(name)
    if extra:
        bad += [n for n in list_files(folder) if n not in files]
    return sorted(bad)
