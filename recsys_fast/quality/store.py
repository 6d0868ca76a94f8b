"""Quality results files: ``results/<machine-id>/quality-<UTC time>-<random>.json``.

Written with :func:`recsys_fast.results_store.write_new` (atomic, never over another file);
the machine id, machine record and git state come from :mod:`recsys_fast.harness.run.machine`, as
for the speed runs. Layout::

    {"schema": "recsys_fast.quality.results", "schema_version": 1, "created": ISO-8601 UTC,
     "machine_id", "machine", "software", "git", "settings", "protocol": str,
     "rows": [{"task": "rating"|"topn"|"published", "dataset", "split", "model", "status",
               ...metrics, "reason"?}, ...]}
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from recsys_fast.errors import DataFormatError
from recsys_fast.results_store import QUALITY_PREFIX as PREFIX
from recsys_fast.results_store import loads_strict

SCHEMA = "recsys_fast.quality.results"
SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "error")
EXTRA_LIBRARIES = ("scikit-surprise", "lenskit", "torch")


def build_document(rows: list[dict], *, settings: dict, protocol: str,
                   git: dict | None = None) -> dict:
    """The results document; ``git``: the checkout's state taken when the run started
    (default: now)."""
    from importlib import metadata

    from recsys_fast.harness.run import machine

    info = machine.machine_info()
    software = machine.library_versions()
    for name in EXTRA_LIBRARIES:
        try:
            software[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine_id": machine.machine_id(info), "machine": info, "software": software,
            "git": git if git is not None else machine.git_info(), "settings": settings, "protocol": protocol, "rows": rows}


def write_document(doc: dict, out_dir: str | os.PathLike) -> Path:
    """Validate ``doc`` and write it under ``out_dir/<machine_id>/`` with a fresh name."""
    from recsys_fast.results_store import results_path, write_new
    from recsys_fast.results_store.journal import run_name

    validate(doc, "<in memory>")
    text = json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n"
    for _ in range(20):
        path = results_path(out_dir, doc["machine_id"], PREFIX + run_name())
        try:
            return write_new(path, text)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free quality results file name under {out_dir}")


def _finite(obj):
    """``obj`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def validate(doc: object, path: object) -> dict:
    """Raise :class:`DataFormatError` naming ``path`` unless ``doc`` is a quality document."""
    from recsys_fast.results_store import check_name

    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise DataFormatError(f"not a recsys_fast quality results file (schema "
                              f"{doc.get('schema') if isinstance(doc, dict) else None!r})", path)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DataFormatError(f"unsupported schema_version {doc.get('schema_version')!r}", path)
    check_name(doc.get("machine_id"), "machine_id", path)
    if not isinstance(doc.get("rows"), list):
        raise DataFormatError("'rows' must be a list", path)
    for n, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise DataFormatError(f"rows[{n}] is not an object", path)
        for key in ("task", "dataset", "split", "model", "status"):
            if not isinstance(row.get(key), str):
                raise DataFormatError(f"rows[{n}].{key} must be a string", path)
        if row["status"] not in STATUSES:
            raise DataFormatError(f"rows[{n}].status {row['status']!r}; valid: {STATUSES}", path)
        if row["status"] != "ok" and not isinstance(row.get("reason"), str):
            raise DataFormatError(f"rows[{n}] is {row['status']} without a reason", path)
    return doc


def load_document(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        doc = loads_strict(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError("quality results file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read quality results file: {exc}", path) from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # a duplicate key; nesting too deep
        raise DataFormatError(f"invalid JSON: {exc}", path) from None
    return validate(doc, path)


def quality_files(out_dir: str | os.PathLike) -> list[Path]:
    """Every ``quality-*.json`` under ``out_dir/<machine>/``, sorted by path."""
    root = Path(out_dir)
    return sorted(root.glob(f"*/{PREFIX}*.json")) if root.is_dir() else []
