"""Results files: ``results/<machine-id>/<timestamp>.json``, written atomically, validated on load.

Layout (``schema_version`` 1)::

    {"schema": "recsys_fast.bench.results", "schema_version": 1,
     "created": ISO-8601 UTC, "machine_id": str,
     "git": {"commit", "dirty"} | null, "machine": {...}, "software": {...},
     "blas": [...], "thread_env": {...}, "gemm_peak": {...},
     "settings": {...}, "data_sources": {scale: description},
     "scale_shapes": {scale: {"n_users", "n_items", "n_ratings"}},
     "cases": [CaseResult.to_dict(), ...]}
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from recsys_fast.errors import DataFormatError

SCHEMA = "recsys_fast.bench.results"
SCHEMA_VERSION = 1
REQUIRED_TOP = ("created", "machine_id", "machine", "software", "gemm_peak", "cases")
REQUIRED_CASE = ("kernel", "impl", "backend", "scale", "status")
STATUSES = ("ok", "skipped", "error")
NOT_MACHINES = ("asv", "plots")  # folders under results/ that hold no runs of ours


def build_results(cases: list[dict], *, machine: dict, machine_id: str, software: dict,
                  blas: list, thread_env: dict, gemm_peak: dict, git: dict | None,
                  settings: dict, data_sources: dict, scale_shapes: dict | None = None,
                  created: datetime | None = None) -> dict:
    """Assemble a results document (see module docstring)."""
    created = created or datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "machine_id": machine_id,
        "git": git,
        "machine": machine,
        "software": software,
        "blas": blas,
        "thread_env": thread_env,
        "gemm_peak": gemm_peak,
        "settings": settings,
        "data_sources": data_sources,
        "scale_shapes": scale_shapes or {},
        "cases": cases,
    }


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``: a
    reader (or an interrupted run) never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def results_path(out_dir: str | os.PathLike, machine_id: str, created: str) -> Path:
    stamp = created.replace(":", "").replace("-", "").replace("+0000", "Z").replace("+00:00", "Z")
    return Path(out_dir) / machine_id / f"{stamp}.json"


def write_results(data: dict, out_dir: str | os.PathLike) -> Path:
    """Validate and write ``data`` to ``<out_dir>/<machine_id>/<timestamp>.json`` (``-2``,
    ``-3``... appended if a run of the same second exists)."""
    validate(data, "<in memory>")
    path = results_path(out_dir, data["machine_id"], data["created"])
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{path.stem.split('-')[0]}-{n}.json")
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def validate(data: object, path: object) -> dict:
    """Raise :class:`DataFormatError` naming ``path`` unless ``data`` is a results document."""
    if not isinstance(data, dict):
        raise DataFormatError(f"not a results file (top level is {type(data).__name__})", path)
    if data.get("schema") != SCHEMA:
        raise DataFormatError(f"not a recsys_fast results file (schema={data.get('schema')!r}, "
                              f"expected {SCHEMA!r})", path)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataFormatError(f"unsupported schema_version {version!r} (this code reads "
                              f"{SCHEMA_VERSION})", path)
    missing = [k for k in REQUIRED_TOP if k not in data]
    if missing:
        raise DataFormatError(f"missing fields {missing}", path)
    if not isinstance(data["cases"], list):
        raise DataFormatError("'cases' is not a list", path)
    for n, case in enumerate(data["cases"]):
        if not isinstance(case, dict):
            raise DataFormatError(f"cases[{n}] is not an object", path)
        lack = [k for k in REQUIRED_CASE if k not in case]
        if lack:
            raise DataFormatError(f"cases[{n}] lacks {lack}", path)
        if case["status"] not in STATUSES:
            raise DataFormatError(f"cases[{n}] has status {case['status']!r}; valid: {STATUSES}",
                                  path)
        if case["status"] == "ok" and not isinstance(case.get("median_s"), int | float):
            raise DataFormatError(f"cases[{n}] ({case['kernel']}/{case['impl']}) is ok but has "
                                  f"no numeric median_s", path)
    return data


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results file; :class:`DataFormatError` names the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError("results file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read results file: {exc}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", path,
                              exc.lineno) from None
    return validate(data, path)


def latest_results(out_dir: str | os.PathLike) -> list[Path]:
    """The newest results file of each machine folder under ``out_dir``."""
    out = []
    root = Path(out_dir)
    if not root.is_dir():
        return out
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_MACHINES):
        files = sorted(f for f in sub.glob("*.json") if not f.name.startswith("."))
        if files:
            out.append(files[-1])
    return out
