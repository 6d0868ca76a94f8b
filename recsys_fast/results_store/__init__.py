"""Results files: ``results/<machine-id>/<run>.json``, written atomically, never over another
file, validated (types included) on load.

Layout (``schema_version`` 2; version 1 files, without ``run``, ``bandwidth`` and ``ratios``,
still load)::

    {"schema": "recsys_fast.bench.results", "schema_version": 2,
     "created": ISO-8601 UTC, "machine_id": str, "run": str,
     "git": {"commit", "dirty", "diff_sha256"?} | null, "machine": {...}, "software": {...},
     "blas": [...], "thread_env": {...}, "gemm_peak": {...}, "bandwidth": {...},
     "settings": {...}, "data_sources": {scale: description},
     "data_provenance": {scale: {"name", "kind", "files" | "generator", "params", "seed",
                                 "loaded", "digest", ...}},
     "scale_shapes": {scale: {"n_users", "n_items", "n_ratings"}},
     "cases": [CaseResult.to_dict() with "data": its scale's provenance digest, ...],
     "ratios": [compare.ratios(...) rows: kind, kernel, scale, baseline, candidate, value,
                lo, hi, significant, paired, ...]}

``machine_id`` and ``run`` become path components, so they must be plain names
(:data:`SAFE_NAME`): a results file cannot steer a writer outside its folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from recsys_fast.errors import DataFormatError, OutputDirError

SCHEMA = "recsys_fast.bench.results"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
REQUIRED_TOP = ("created", "machine_id", "machine", "software", "gemm_peak", "cases")
REQUIRED_CASE = ("kernel", "impl", "backend", "scale", "status")
STATUSES = ("ok", "skipped", "error")
NOT_MACHINES = ("asv", "plots")  # folders under results/ that hold no runs of ours
QUALITY_PREFIX = "quality-"  # accuracy files (recsys_fast.quality.store), not speed runs


def build_results(cases: list[dict], *, machine: dict, machine_id: str, software: dict,
                  blas: list, thread_env: dict, gemm_peak: dict, git: dict | None,
                  settings: dict, data_sources: dict, scale_shapes: dict | None = None,
                  created: datetime | None = None, bandwidth: dict | None = None,
                  run: str | None = None, ratios: list | None = None,
                  data_provenance: dict | None = None) -> dict:
    """Assemble a results document (see module docstring)."""
    created = created or datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "machine_id": machine_id,
        "run": run,
        "git": git,
        "machine": machine,
        "software": software,
        "blas": blas,
        "thread_env": thread_env,
        "gemm_peak": gemm_peak,
        "bandwidth": bandwidth or {},
        "settings": settings,
        "data_sources": data_sources,
        "data_provenance": data_provenance or {},
        "scale_shapes": scale_shapes or {},
        "cases": cases,
        "ratios": ratios or [],
    }


def _complete_temp(path: Path, text: str) -> str:
    """A fully written, fsync'ed, world-readable temp file beside ``path``; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``: a
    reader (or an interrupted run) never sees a partial file. Replaces ``path``: callers
    decide whether they own it."""
    path = Path(path)
    tmp = _complete_temp(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ensure_writable(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and prove a file can be written there, before any work."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise OutputDirError(f"results folder {str(out)!r} is not writable: "
                             f"{exc.strerror or exc}") from None
    return out


def write_new(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; FileExistsError if ``path`` exists (never
    replaced: a hard link of the complete temp file is the commit point)."""
    tmp = _complete_temp(path, text)
    try:
        os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def check_name(name: object, what: str, path: object = None) -> str:
    """``name`` if it is safe as one path component (:data:`SAFE_NAME`), else DataFormatError."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise DataFormatError(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', "
                              "'-'; it becomes a file name)", path)
    return name


def results_path(out_dir: str | os.PathLike, machine_id: str, name: str) -> Path:
    check_name(machine_id, "machine_id")
    check_name(name, "run name")
    return Path(out_dir) / machine_id / f"{name}.json"


def write_results(data: dict, out_dir: str | os.PathLike, name: str | None = None) -> Path:
    """Validate and write ``data`` to ``<out_dir>/<machine_id>/<name>.json`` (``name``: the
    given run name, else the document's ``run``, else a fresh unique one); never overwrites."""
    from recsys_fast.results_store.journal import run_name

    validate(data, "<in memory>")
    strict = name is not None  # an explicit name is the run's own: never another
    name = name or data.get("run")
    for _ in range(20):
        if name is None:
            name = run_name()
        data = {**data, "run": name}
        text = json.dumps(data, indent=1, sort_keys=False, allow_nan=False) + "\n"
        try:
            return write_new(results_path(out_dir, data["machine_id"], name), text)
        except FileExistsError:
            if strict:
                raise
            name = None  # a fresh random suffix
    raise FileExistsError(f"no free results file name under {out_dir}")


_NUM = (int, float)


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {int: "a number", float: "a number", str: "a string", dict: "an object",
             list: "a list"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _expect(value, types, what: str, path, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, types):
        raise DataFormatError(f"{what} must be {_type_names(types)}, got "
                              f"{type(value).__name__}", path)
    if isinstance(value, float) and not math.isfinite(value):
        raise DataFormatError(f"{what} must be finite, got {value!r}", path)


def _validate_case(n: int, case: object, path) -> None:
    if not isinstance(case, dict):
        raise DataFormatError(f"cases[{n}] is not an object", path)
    lack = [k for k in REQUIRED_CASE if k not in case]
    if lack:
        raise DataFormatError(f"cases[{n}] lacks {lack}", path)
    for k in REQUIRED_CASE:
        _expect(case[k], str, f"cases[{n}].{k}", path)
    if case["status"] not in STATUSES:
        raise DataFormatError(f"cases[{n}] has status {case['status']!r}; valid: {STATUSES}",
                              path)
    for k in ("median_s", "iqr_s", "min_s", "setup_s", "peak_rss_bytes",
              "peak_rss_delta_bytes", "memory_estimate_bytes"):
        _expect(case.get(k), _NUM, f"cases[{n}].{k}", path, optional=True)
    _expect(case.get("extra"), dict, f"cases[{n}].extra", path, optional=True)
    _expect(case.get("times_s"), list, f"cases[{n}].times_s", path, optional=True)
    for t in case.get("times_s") or []:
        _expect(t, _NUM, f"cases[{n}].times_s[]", path)
    for k in ("verdict", "checked_against", "skipped_reason", "error", "worker", "data"):
        _expect(case.get(k), str, f"cases[{n}].{k}", path, optional=True)
    if case["status"] == "ok" and not (isinstance(case.get("median_s"), _NUM)
                                       and case["median_s"] > 0):
        raise DataFormatError(f"cases[{n}] ({case['kernel']}/{case['impl']}) is ok but has no "
                              "positive median_s", path)


def validate(data: object, path: object) -> dict:
    """Raise :class:`DataFormatError` naming ``path`` unless ``data`` is a results document
    whose fields have the types the report relies on."""
    if not isinstance(data, dict):
        raise DataFormatError(f"not a results file (top level is {type(data).__name__})", path)
    if data.get("schema") != SCHEMA:
        raise DataFormatError(f"not a recsys_fast results file (schema={data.get('schema')!r}, "
                              f"expected {SCHEMA!r})", path)
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise DataFormatError(f"unsupported schema_version {version!r} (this code reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))})", path)
    missing = [k for k in REQUIRED_TOP if k not in data]
    if missing:
        raise DataFormatError(f"missing fields {missing}", path)
    _expect(data["created"], str, "'created'", path)
    try:
        datetime.fromisoformat(data["created"])
    except ValueError:
        raise DataFormatError(f"'created' is not an ISO time: {data['created']!r}", path) from None
    check_name(data["machine_id"], "machine_id", path)
    if data.get("run") is not None:
        check_name(data["run"], "run", path)
    for key in ("machine", "software", "gemm_peak"):
        _expect(data[key], dict, repr(key), path)
    for key in ("settings", "data_sources", "data_provenance", "scale_shapes", "bandwidth",
                "thread_env", "git"):
        _expect(data.get(key), dict, repr(key), path, optional=True)
    for key, v in data["gemm_peak"].items():
        if key.endswith("_gflops"):
            _expect(v, _NUM, f"gemm_peak.{key}", path)
    scatter = (data.get("bandwidth") or {}).get("scatter")
    _expect(scatter, dict, "bandwidth.scatter", path, optional=True)
    for key, v in (scatter or {}).items():
        if key.endswith(("_per_s", "_bytes")):
            _expect(v, _NUM, f"bandwidth.scatter.{key}", path)
    _expect(data["cases"], list, "'cases'", path)
    _expect(data.get("ratios"), list, "'ratios'", path, optional=True)
    seen: dict[tuple, int] = {}
    for n, case in enumerate(data["cases"]):
        _validate_case(n, case, path)
        key = tuple(case[k] for k in REQUIRED_CASE[:4])
        if key in seen:
            raise DataFormatError(f"case {n} repeats case {seen[key]} "
                                  f"({'/'.join(map(str, key))}): one row per case", path)
        seen[key] = n
    return data


def _unique_keys(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_strict(text: str):
    """``json.loads`` refusing an object with a key twice (json keeps the last silently):
    ValueError ``duplicate key ...``; JSONDecodeError as json's."""
    return json.loads(text, object_pairs_hook=_unique_keys)


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
        data = loads_strict(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", path,
                              exc.lineno) from None
    except ValueError as exc:  # a duplicate key
        raise DataFormatError(f"invalid JSON: {exc}", path) from None
    except RecursionError:
        raise DataFormatError("invalid JSON: nested too deeply", path) from None
    return validate(data, path)


def latest_results(out_dir: str | os.PathLike) -> list[Path]:
    """The newest results file of each machine folder under ``out_dir``, by the time recorded
    inside (not the file name). Unfinished runs (``*.partial.jsonl``) are never results."""
    out = []
    root = Path(out_dir)
    if not root.is_dir():
        return out
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_MACHINES):
        dated = []
        for f in sub.glob("*.json"):
            if f.name.startswith((".", QUALITY_PREFIX)):
                continue
            created = datetime.fromisoformat(load_results(f)["created"])
            if created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            dated.append((created, f.name, f))
        if dated:
            out.append(max(dated)[2])
    return out
