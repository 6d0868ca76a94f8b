"""The named data sets: where each comes from, how it is checked, and how it is loaded.

A data set's URL, size and SHA-256 live in :mod:`recsys_fast.data.specs`; this module looks them up. The GroupLens archives are
downloaded by :func:`~recsys_fast.data.download.fetch` and verified against the sizes and
checksums recorded in tensorflow/datasets (``url_checksums/movielens.txt``). GroupLens
publishes no checksum for ml-10m, so it is fetched only with ``verify=False``
(``--no-verify``). The Kaggle files and the retail sample have no direct download (a login,
or no stated licence): point ``--path`` at a copy, or put it in the cache folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys_fast.data.download import FetchResult, cache_dir, check_cached_folder, fetch
from recsys_fast.data.interactions import Interactions
from recsys_fast.data.specs import DATASETS, GROUPLENS, DatasetSpec, get_spec
from recsys_fast.errors import DatasetMismatchError, DatasetNotFoundError

__all__ = ["DATASETS", "GROUPLENS", "DatasetSpec", "FetchResult", "fetch", "get_spec", "info",
           "list_datasets", "load", "load_named", "resolve_path"]

def list_datasets(cache: str | Path | None = None) -> list[dict]:
    """One dict per catalogue entry: name, kind, description, url, size, sha256,
    verification, folder, whether it is in the cache and where."""
    root = Path(cache) if cache is not None else cache_dir()
    return [
        {
            "name": s.name,
            "kind": s.kind,
            "description": s.description,
            "url": s.url,
            "size": s.size,
            "sha256": s.sha256,
            "verification": s.verification,
            "folder": s.folder,
            "cached": (root / s.folder).is_dir(),
            "path": str(root / s.folder),
            "note": s.note,
        }
        for s in DATASETS.values()
    ]


def resolve_path(name: str, path: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """Where ``name`` will be loaded from: ``path`` if given, else its folder in the cache."""
    spec = get_spec(name)
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DatasetNotFoundError(
                f"{p}: does not exist; expected a copy of {name} (files: {', '.join(spec.files)})"
            )
        return p
    root = Path(cache) if cache is not None else cache_dir()
    p = root / spec.folder
    if not p.is_dir():
        how = (f"fetch it with `recsys-fast data fetch {name}` "
               f"(recsys_fast.data.fetch({name!r}))" if spec.url else spec.note.rstrip("."))
        raise DatasetNotFoundError(
            f"{name} is not in the cache ({p} does not exist): {how}; or pass --path DIR "
            f"pointing at a folder with {', '.join(spec.files)}"
        )
    check_cached_folder(spec, root)
    return p


def load(
    name: str, path: str | Path | None = None, *, cache: str | Path | None = None, **kwargs
) -> Interactions | pd.DataFrame:
    """Load a catalogued data set from ``path``, or from the cache when ``path`` is None.

    Extra keyword arguments go to the loader (e.g. ``duplicates="last"``).

    Raises
    ------
    DatasetNotFoundError
        Neither ``path`` nor the cache holds it; the message says how to fetch it or
        to pass ``--path``.
    """
    spec = get_spec(name)
    where = resolve_path(name, path, cache)
    check_files(spec, where)
    return _mark_verified(spec, where, cache, check_counts(spec, where, spec.loader(where, **kwargs)))


def content_verified(spec: DatasetSpec, where: Path, cache: str | Path | None = None) -> bool:
    """Whether the files under ``where`` are known to be the release: their own size and
    SHA-256 checked on load (``spec.release_files``), or the cache folder unzipped from an
    archive verified against its published SHA-256 (and unchanged since, see
    :func:`~recsys_fast.data.download.check_cached_folder`). ml-10m (no published checksum)
    and the local-only sets are not."""
    if spec.release_files:
        return True
    root = Path(cache) if cache is not None else cache_dir()
    folder = where if where.is_dir() else where.parent
    return bool(spec.sha256) and folder.resolve() == (root / spec.folder).resolve()


def _mark_verified(spec: DatasetSpec, where: Path, cache, obj):
    """``obj`` marked ``verified`` (Interactions ``meta``, DataFrame ``attrs``)."""
    ok = content_verified(spec, where, cache)
    if isinstance(obj, Interactions):
        obj.meta["verified"] = ok and not obj.meta.get("synthetic")
    else:
        obj.attrs["verified"] = ok
    return obj


def check_files(spec: DatasetSpec, where: Path) -> None:
    """Raise :class:`DatasetMismatchError` unless ``where`` holds every file of ``spec``.

    ``where`` is the data set's folder or a file in it. The message names the missing files
    and, when the folder holds another catalogued data set's files, that data set.
    """
    folder = where if where.is_dir() else where.parent
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if not missing:
        return
    looks = [o.name for o in DATASETS.values()
             if o.name != spec.name and all((folder / f).is_file() for f in o.files)]
    like = f"; it looks like {' or '.join(looks)}" if looks else ""
    raise DatasetMismatchError(
        f"{folder}: does not hold {spec.name}: missing {', '.join(missing)} "
        f"(expected {', '.join(spec.files)}){like}"
    )


def check_counts(spec: DatasetSpec, where: Path, obj):
    """Return ``obj`` (a loaded data set) if its counts are those of ``spec``'s release.

    Synthetic data (written by ``recsys-fast data synth``) is returned as is: its loader has
    already named it synthetic. Raises :class:`DatasetMismatchError` otherwise.
    """
    if spec.counts is None or not isinstance(obj, Interactions) or obj.meta.get("synthetic"):
        return obj
    got = (obj.n_users, obj.n_items, obj.n_ratings)
    if got != spec.counts:
        raise DatasetMismatchError(
            f"{where}: does not hold {spec.name}: it has {got[0]:,} users, {got[1]:,} rated "
            f"items and {got[2]:,} ratings; {spec.name} has {spec.counts[0]:,}, "
            f"{spec.counts[1]:,} and {spec.counts[2]:,}"
        )
    check_release_files(spec, where)
    obj.name = spec.name
    return obj


def check_release_files(spec: DatasetSpec, where: Path) -> None:
    """:class:`DatasetMismatchError` unless the release files of ``spec`` under ``where`` (a
    folder, or a file in it) have the release's size and SHA-256."""
    from recsys_fast.data.manifest import sha256_file

    folder = where if where.is_dir() else where.parent
    for name, size, sha in spec.release_files:
        path = folder / name
        if not path.is_file():
            continue  # check_files names missing files
        got_size = path.stat().st_size
        got = sha256_file(path) if got_size == size else None
        if got != sha:
            raise DatasetMismatchError(
                f"{path}: has {spec.name}'s counts but is not its release ({got_size:,} bytes, "
                f"SHA-256 {(got or sha256_file(path))[:16]}...; the release's {name} has "
                f"{size:,} bytes, SHA-256 {sha[:16]}...): an altered copy, or a synthetic "
                "folder without its marker file"
            )


def info(name: str, path: str | Path | None = None, *, cache: str | Path | None = None) -> dict:
    """Summary of a data set: counts, density, rating histogram (ratings) or item counts."""
    spec = get_spec(name)
    where = resolve_path(name, path, cache)
    obj = load(name, where, cache=cache)
    out = {"name": name, "path": str(where), "description": spec.description}
    if isinstance(obj, Interactions):
        out.update(obj.summary())
        out["synthetic"] = bool(obj.meta.get("synthetic"))
        out["verified"] = obj.meta["verified"]
        out["name"] = (f"{obj.name} (written by `recsys-fast data synth`, not the real {name})"
                       if out["synthetic"] else name if out["verified"]
                       else f"{name} (unverified: no published checksum for these files)")
        out["n_duplicates_overwritten"] = obj.n_duplicates_overwritten
        return out
    out.update(
        verified=obj.attrs["verified"],
        items=len(obj),
        columns=list(obj.columns),
        with_text=int((obj["text"].str.len() > 0).sum()),
        rejected_rows=int(obj.attrs.get("n_rejected", 0)),
    )
    if "vote_count" in obj:
        out["vote_count_total"] = int(obj["vote_count"].sum())
    return out


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "FetchResult",
    "cache_dir",
    "check_counts",
    "check_files",
    "fetch",
    "get_spec",
    "info",
    "list_datasets",
    "load",
    "resolve_path",
]


def load_named(name: str, path: str | Path | None = None):
    """``synthetic-<scale>`` (generated) or a catalogue name (loaded, with an optional path)."""
    if name.startswith("synthetic-"):
        from recsys_fast.data.synthetic import generate

        return generate(name.removeprefix("synthetic-"))
    return load(name, path=path)
