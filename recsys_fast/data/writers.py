"""Writers for the real file formats, so the real parsers can be exercised on synthetic data."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from recsys_fast.data.interactions import Interactions
from recsys_fast.data.manifest import (
    SYNTH_MARKER,
    changed_files,
    describe_files,
    list_files,
    read_manifest,
    write_json_atomic,
)
from recsys_fast.data.text import GENRES
from recsys_fast.errors import OutputError

_YEAR = re.compile(r"\((\d{4})\)\s*$")
_IMDB = "http://us.imdb.com/M/title-exact?"
# the files write_ml100k_format may write
ML100K_FILES = ("u.data", "u.item", "u.genre", "u.info", "u.user", "u.occupation")


def write_ml100k_format(inter: Interactions, directory: str | Path) -> Path:
    """Write ``inter`` as an ML-100K folder: ``u.data``, ``u.item``, ``u.genre``, ``u.info``
    and, when ``inter.users`` has the demographics, ``u.user`` and ``u.occupation``.

    ``u.data`` is tab-separated ``user item rating timestamp`` in the frame's row order;
    ``u.item`` is latin-1, ``|``-separated, 24 fields (id, title, release date, video release
    date, IMDb URL, 19 genre flags), the release date taken from a ``release_date`` column or
    the title's ``(YYYY)``.

    Returns
    -------
    Path
        The directory (created if needed).

    Raises
    ------
    ValueError
        Ratings that are not whole numbers 1..5, rated items missing from ``inter.items``,
        a genre outside the 19 ML-100K genres, a title with ``|``, a newline or a character
        latin-1 cannot encode; the message names the row or item.
    """
    out = Path(directory)
    r = inter.ratings
    rating = r["rating"].to_numpy()
    bad = np.flatnonzero((rating != np.round(rating)) | (rating < 1) | (rating > 5))
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"{inter.name}: ML-100K ratings are whole numbers 1..5; row {k} has rating "
            f"{float(rating[k])} (user {r['user_id'].iat[k]}, item {r['item_id'].iat[k]})"
        )
    items = inter.items.sort_index()
    unknown = np.setdiff1d(r["item_id"].unique(), items.index.to_numpy())
    if len(unknown):
        raise ValueError(
            f"{inter.name}: rated items missing from the items table: {unknown[:10].tolist()}"
        )
    item_lines = [
        _u_item_line(inter.name, iid, row)
        for iid, row in zip(items.index, items.itertuples(), strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    data = pd.DataFrame(
        {
            "u": r["user_id"].to_numpy(np.int64),
            "i": r["item_id"].to_numpy(np.int64),
            "r": rating.astype(np.int64),
            "t": r["timestamp"].to_numpy(np.int64),
        }
    )
    data.to_csv(out / "u.data", sep="\t", header=False, index=False, lineterminator="\n")
    _write_latin1(out / "u.item", item_lines)
    _write_latin1(out / "u.genre", [f"{g}|{k}" for k, g in enumerate(GENRES)] + [""])
    n_users = r["user_id"].nunique()
    info = [f"{n_users} users", f"{len(items)} items", f"{len(r)} ratings"]
    _write_latin1(out / "u.info", info)
    users = inter.users
    cols = ["age", "gender", "occupation", "zip_code"]
    if users is not None and all(c in users.columns for c in cols):
        users = users.sort_index()
        lines = [
            "|".join(str(v) for v in (uid, *vals))
            for uid, vals in zip(users.index, users[cols].itertuples(index=False), strict=True)
        ]
        _write_latin1(out / "u.user", lines)
        _write_latin1(out / "u.occupation", sorted(set(users["occupation"].astype(str))))
    return out


def write_synthetic_ml100k(
    inter: Interactions, directory: str | Path, *, force: bool = False, info: dict | None = None
) -> Path:
    """Write synthetic ``inter`` in ML-100K format into ``directory``, with a manifest.

    The folder gets :data:`~recsys_fast.data.manifest.SYNTH_MARKER`, listing each file
    written with its size and SHA-256, so loaders recognise the folder as synthetic and a
    later call may rewrite those files. Files are written into a temporary folder inside
    ``directory`` first and moved into place only once all of them are written.

    Parameters
    ----------
    inter : the synthetic data set.
    directory : output folder; created if needed.
    force : replace files this function did not write (or that changed since it wrote them)
        when they have the names it writes; other files are left alone.
    info : extra fields recorded in the manifest (e.g. ``scale``, ``seed``).

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputError
        ``directory`` is a file or cannot be created or written, or (without ``force``) it
        holds files this function did not write; the message lists them and what ``force``
        would replace.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder; give --out a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder: {exc.strerror or exc}") from None
    previous = read_manifest(out / SYNTH_MARKER)
    ours = previous["files"] if previous else {}
    unchanged = set(ours) - set(changed_files(out, ours, extra=False))
    foreign = [
        p.name for p in sorted(out.iterdir())
        if p.name != SYNTH_MARKER and p.name not in unchanged
        and not (p.is_dir() and p.name.startswith(".synth-"))  # left by an interrupted run
    ]
    if foreign and not force:
        clash = [n for n in foreign if n in ML100K_FILES]
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        replace = (f"--force replaces {', '.join(clash)} and leaves the other files alone"
                   if clash else "--force writes next to them without replacing any")
        raise OutputError(
            f"{out}: holds files that `data synth` did not write ({shown}); refusing to write "
            f"there. Choose an empty or new folder, or: {replace}"
        )
    try:
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=".synth-"))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write into the output folder: {exc.strerror or exc}") from None
    try:
        write_ml100k_format(inter, tmp)
        written = describe_files(tmp, list_files(tmp))
        for name in written:
            os.replace(tmp / name, out / name)
        for name in unchanged - set(written):  # left by an earlier run, not written this time
            (out / name).unlink(missing_ok=True)
        manifest = {"written_by": "recsys-fast data synth", "dataset": inter.name,
                    "format": "ml-100k", **(info or {}), "files": written}
        write_json_atomic(out / SYNTH_MARKER, manifest)
    except OSError as exc:
        raise OutputError(f"{out}: writing the synthetic data failed: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _u_item_line(name: str, item_id, row) -> str:
    title = str(row.title)
    if "|" in title or "\n" in title:
        raise ValueError(f"{name}: item {item_id} title {title!r} contains '|' or a newline")
    genres = [g for g in str(row.genres).split("|") if g]
    unknown = [g for g in genres if g not in GENRES]
    if unknown:
        raise ValueError(
            f"{name}: item {item_id} has genres {unknown} outside the ML-100K list {GENRES}"
        )
    flags = ["1" if g in genres else "0" for g in GENRES]
    if not genres:
        flags[0] = "1"
    release = str(getattr(row, "release_date", "") or "")
    if not release:
        m = _YEAR.search(title)
        release = f"01-Jan-{m.group(1)}" if m else ""
    url = _IMDB + quote(title, safe="(),'") if title else ""
    line = "|".join([str(int(item_id)), title, release, "", url, *flags])
    try:
        line.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}: item {item_id} title {title!r} is not latin-1: {exc}") from None
    return line


def _write_latin1(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="latin-1", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def write_retail_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (columns ``id, description``) as a retail ``sample-data.csv`` (UTF-8, LF).

    Raises
    ------
    ValueError
        Missing columns, ids that are not unique positive integers, or empty descriptions;
        the message names the row.
    """
    missing = [c for c in ("id", "description") if c not in df.columns]
    if missing:
        raise ValueError(
            f"write_retail_csv: frame lacks columns {missing} (has {list(df.columns)})"
        )
    ids = df["id"]
    if not pd.api.types.is_integer_dtype(ids) or (ids < 1).any():
        raise ValueError(
            f"write_retail_csv: ids must be positive integers, got dtype {ids.dtype}, min {ids.min()!r}"
        )
    dup = ids.duplicated()
    if dup.any():
        k = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"write_retail_csv: id {ids.iat[k]} repeats (row {k})")
    text = df["description"].astype(str)
    empty = text.str.strip() == ""
    if empty.any():
        k = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(f"write_retail_csv: description of id {ids.iat[k]} (row {k}) is empty")
    out = Path(path)
    pd.DataFrame({"id": ids.to_numpy(), "description": text.to_numpy()}).to_csv(
        out, index=False, encoding="utf-8", lineterminator="\n"
    )
    return out
