"""Item-metadata loaders: The Movies Dataset, TMDB 5000, and the retail ``sample-data.csv``.

All three return an items frame (see :mod:`recsys_fast.data.interactions`): indexed by
``item_id`` with ``title, genres, text`` and, for the movie files, ``vote_count,
vote_average`` (what the course's IMDB weighted rating needs).
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_fast.data._checks import file_in, read_csv_records
from recsys_fast.data.interactions import make_items_frame
from recsys_fast.errors import DataFormatError

MOVIE_COLUMNS = ("id", "title", "genres", "overview", "vote_average", "vote_count")


def load_movies_metadata(csv: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """Load Kaggle's The Movies Dataset ``movies_metadata.csv`` as an items frame.

    The real file has a few broken records (an overview split across records, leaving dates
    in the ``id`` column) and repeated ids. With ``strict=False`` (default) such rows are
    left out and listed in ``df.attrs["rejected_rows"]`` as ``{"line", "reason"}`` dicts
    (``df.attrs["n_rejected"]`` is their count) and a warning says how many; repeated ids
    keep their first row. With ``strict=True`` the first one raises.

    Parameters
    ----------
    csv : the CSV file, or the folder holding ``movies_metadata.csv``.
    strict : raise on the first bad row instead of rejecting it.

    Raises
    ------
    DatasetNotFoundError
        The file is missing.
    DataFormatError
        Missing columns, bad encoding, empty file; any bad row when ``strict``.
    """
    path = file_in(csv, "movies_metadata.csv", "movies_metadata.csv (The Movies Dataset)")
    return _load_movies(path, strict=strict)


def load_tmdb5000(csv: str | Path) -> pd.DataFrame:
    """Load Kaggle's ``tmdb_5000_movies.csv`` as an items frame (text = overview).

    Every row must be well formed: this file has no known broken rows, so any raises.
    Missing overviews (three in the real file) become ``""``.
    """
    path = file_in(csv, "tmdb_5000_movies.csv", "tmdb_5000_movies.csv (TMDB 5000 Movie Dataset)")
    return _load_movies(path, strict=True)


def load_retail(csv: str | Path) -> pd.DataFrame:
    """Load the retail ``sample-data.csv`` (``id,description``) as an items frame.

    ``text`` is the description; ``title`` the part before the first ``" - "``.
    """
    path = file_in(csv, "sample-data.csv", "sample-data.csv (id,description)")
    rec = read_csv_records(path, ("id", "description"))
    ids = _int_column(rec.column("id"), "id", path, rec.lines)
    _reject_duplicates(ids, rec.lines, path, strict=True)
    text = rec.column("description")
    for k, t in enumerate(text):
        if not t.strip():
            raise DataFormatError(f"description of id {ids[k]} is empty", path=path, line=rec.lines[k])
    titles = [t.split(" - ", 1)[0].strip() for t in text]
    items = make_items_frame(ids, titles, None, text)
    items.attrs["source"] = str(path)
    return items


def load_movie_keywords(csv: str | Path) -> pd.DataFrame:
    """The Movies Dataset's ``keywords.csv`` (``id,keywords``: a list of ``{'id', 'name'}``
    records per TMDB movie) as an items frame whose ``text`` is the movie's keyword names,
    space-separated, for the content recommender.

    Movies without keywords are left out (``attrs["n_without_keywords"]``); an id repeated
    with the same keywords is kept once (``attrs["n_duplicates"]``), with other keywords it is
    an error naming both lines. A row whose keywords do not parse is an error naming it.
    """
    path = file_in(csv, "keywords.csv", "keywords.csv (id,keywords)")
    rec = read_csv_records(path, ("id", "keywords"))
    ids = _int_column(rec.column("id"), "id", path, rec.lines)
    names = []
    for k, raw in enumerate(rec.column("keywords")):
        parsed = _genre_names(raw)
        if parsed is None:
            raise DataFormatError(f"keywords of id {ids[k]} is not a list of {{'id', 'name'}} "
                                  f"records: {raw[:60]!r}", path=path, line=rec.lines[k])
        names.append(parsed.replace("|", " "))
    frame = pd.DataFrame({"id": ids, "text": names, "line": rec.lines})
    first = frame.drop_duplicates("id", keep="first").set_index("id")
    repeats = frame[frame.duplicated("id", keep="first")]
    for _, r in repeats.iterrows():
        if r["text"] != first.at[r["id"], "text"]:
            raise DataFormatError(f"id {r['id']} repeated with other keywords (first on line "
                                  f"{first.at[r['id'], 'line']})", path=path, line=int(r["line"]))
    keep = first[first["text"].str.len() > 0]
    items = make_items_frame(keep.index.to_numpy(np.int64), None, None, keep["text"].tolist())
    items.attrs.update(source=str(path), n_duplicates=int(len(repeats)),
                       n_without_keywords=int(len(first) - len(keep)))
    return items


# -- shared ---------------------------------------------------------------------------------
def _load_movies(path: Path, *, strict: bool) -> pd.DataFrame:
    rec = read_csv_records(path, MOVIE_COLUMNS, strict=strict)
    rejected: list[dict] = list(rec.rejected)
    n = len(rec.rows)
    lines = np.asarray(rec.lines, dtype=np.int64)
    reason = np.full(n, "", dtype=object)

    raw_ids = rec.column("id")
    ids = _numeric(raw_ids)
    bad_id = ~np.isfinite(ids) | (ids < 1) | (ids != np.round(ids))
    _flag(reason, bad_id, "id is not a positive integer", raw_ids)
    raw_count, raw_avg = rec.column("vote_count"), rec.column("vote_average")
    count, avg = _numeric(raw_count), _numeric(raw_avg)
    bad_count = ~np.isfinite(count) | (count < 0) | (count != np.round(count))
    _flag(reason, bad_count, "vote_count is not a non-negative integer", raw_count)
    _flag(reason, ~np.isfinite(avg) | (avg < 0) | (avg > 10), "vote_average is not in 0..10", raw_avg)
    genres = []
    for k, g in enumerate(rec.column("genres")):
        names = _genre_names(g)
        if names is None and not reason[k]:
            reason[k] = f"genres is not a list of {{'id', 'name'}} records: {g[:60]!r}"
        genres.append(names or "")

    bad = reason != ""
    if bad.any() and strict:
        k = int(np.argmax(bad))
        raise DataFormatError(reason[k], path=path, line=int(lines[k]))
    rejected += [{"line": int(lines[k]), "reason": reason[k]} for k in np.flatnonzero(bad)]
    keep = ~bad
    ok_ids = ids[keep].astype(np.int64)
    dup = _reject_duplicates(ok_ids, lines[keep].tolist(), path, strict=strict)
    rejected += dup["rejected"]
    keep[np.flatnonzero(keep)[dup["mask"]]] = False

    def col(name: str) -> list[str]:
        return [v for v, k in zip(rec.column(name), keep, strict=True) if k]

    extra = {c: col(c) for c in ("release_date", "tagline") if c in rec.header}
    items = make_items_frame(
        ids[keep].astype(np.int64),
        col("title"),
        [g for g, k in zip(genres, keep, strict=True) if k],
        col("overview"),
        vote_count=count[keep].astype(np.int64),
        vote_average=avg[keep].astype(np.float64),
        **extra,
    )
    rejected.sort(key=lambda r: r["line"])
    items.attrs.update(source=str(path), rejected_rows=rejected, n_rejected=len(rejected))
    if rejected:
        first = ", ".join(str(r["line"]) for r in rejected[:5])
        warnings.warn(
            f"{path}: left out {len(rejected)} malformed or repeated row(s) (lines {first}"
            f"{', ...' if len(rejected) > 5 else ''}); see df.attrs['rejected_rows']",
            stacklevel=3,
        )
    return items


def _numeric(values: list[str]) -> np.ndarray:
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float64)


def _flag(reason: np.ndarray, mask: np.ndarray, what: str, raw: list[str]) -> None:
    for k in np.flatnonzero(mask & (reason == "")):
        reason[k] = f"{what}: {raw[k][:60]!r}"


def _int_column(values: list[str], name: str, path: Path, lines: list[int]) -> np.ndarray:
    x = _numeric(values)
    bad = ~np.isfinite(x) | (x < 1) | (x != np.round(x))
    if bad.any():
        k = int(np.argmax(bad))
        raise DataFormatError(
            f"{name} is not a positive integer: {values[k]!r}", path=path, line=lines[k]
        )
    return x.astype(np.int64)


def _reject_duplicates(ids: np.ndarray, lines: list[int], path: Path, *, strict: bool) -> dict:
    """Mask of repeated ids after their first row; raise on the first when ``strict``."""
    s = pd.Series(ids)
    mask = s.duplicated(keep="first").to_numpy()
    first_line = dict(zip(s[~mask].tolist(), np.asarray(lines)[~mask].tolist(), strict=True))
    out = []
    for k in np.flatnonzero(mask):
        reason = f"id {ids[k]} repeated (first on line {first_line[ids[k]]})"
        if strict:
            raise DataFormatError(reason, path=path, line=int(lines[k]))
        out.append({"line": int(lines[k]), "reason": reason})
    return {"mask": mask, "rejected": out}


def _genre_names(text: str) -> str | None:
    """``"[{'id': 16, 'name': 'Animation'}, ...]"`` (JSON or Python literal) -> ``"Animation|..."``."""
    t = text.strip()
    if not t:
        return ""
    try:
        records = json.loads(t)
    except ValueError:
        try:
            records = ast.literal_eval(t)  # The Movies Dataset writes Python reprs, not JSON
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("name"), str) for r in records
    ):
        return None
    return "|".join(r["name"] for r in records)
