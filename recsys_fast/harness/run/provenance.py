"""What data a scale of a run read, as a record: the files read (name, bytes, SHA-256) or the
generator and its parameters, the counts actually loaded, and a digest of all that.

The digest leaves out where the files were (the same bytes in another folder are the same
data), so two runs, or a run and its resume, read the same data exactly when their digests
agree. Every case row of a results file names its scale's digest (``row["data"]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any


def portable_path(folder: Path, shared: str | None = None) -> str:
    """``folder`` as a results file records it, with no machine path:
    ``$RECSYS_FAST_SHARED/<rest>`` when it lies under ``shared`` (that variable's folder), else
    its own name. The files' sizes and SHA-256 say which data it was."""
    folder = Path(folder)
    if shared:
        try:
            rest = folder.resolve().relative_to(Path(shared).resolve())
        except ValueError:
            pass
        else:
            return "$RECSYS_FAST_SHARED" + ("" if str(rest) == "." else f"/{rest.as_posix()}")
    return folder.name


def files_read(name: str, folder: Path, files: list[str], shared: str | None = None) -> dict:
    """Provenance of a data set read from ``files`` in ``folder`` (recorded as
    :func:`portable_path`, ``shared``: the shared data folder)."""
    from recsys_fast.data.manifest import describe_files

    return {"name": name, "kind": "files", "path": portable_path(folder, shared),
            "files": [{"file": f, "bytes": d["size"], "sha256": d["sha256"]}
                      for f, d in describe_files(folder, files).items()]}


def file_text(entry: dict) -> str:
    """``name size bytes, SHA-256 <first 16 hex>`` of one entry of a record's ``files``."""
    return f"{entry['file']} {entry['bytes']:,} bytes, SHA-256 {entry['sha256'][:16]}"


def generated(name: str, spec: Any, seed: int, fmt: str = "in memory") -> dict:
    """Provenance of synthetic data: the generator, its parameters (a SyntheticSpec) and seed."""
    params = json.loads(json.dumps(dataclasses.asdict(spec), default=str))
    return {"name": name, "kind": "generator", "generator": "recsys_fast.data.synthetic",
            "format": fmt, "params": params, "seed": int(seed)}


def digest(prov: dict) -> str:
    """16 hex digits of SHA-256 over the record without its ``path`` and ``digest``."""
    body = {k: v for k, v in prov.items() if k not in ("path", "digest")}
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished(prov: dict | None, inter=None) -> dict | None:
    """``prov`` with the counts loaded (``inter``: the Interactions, when held in memory) and
    its digest."""
    if prov is None:
        return None
    out = dict(prov)
    if inter is not None:
        out["loaded"] = {"n_users": int(inter.n_users), "n_items": int(inter.n_items),
                         "n_ratings": int(inter.n_ratings)}
    out["digest"] = digest(out)
    return out


def differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """What differs between two provenance records, field by field (empty when their digests
    agree), e.g. ``params.popularity_exponent: 0.85 -> 0.5``."""
    if not prefix and before.get("digest") == now.get("digest"):
        return []
    out = []
    for key in sorted(set(before) | set(now)):
        if not prefix and key in ("path", "digest"):
            continue
        a, b = before.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return out or ([] if prefix else ["digest"])


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
