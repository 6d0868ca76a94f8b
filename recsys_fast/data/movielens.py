"""MovieLens loaders: 100K (``u.data``), 1M/10M (``ratings.dat``), latest/20M/25M (``ratings.csv``).

Ratings go through the C parser and vectorised checks (25M rows take seconds, not minutes);
the small item/user files are parsed line by line so every error names its exact line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys_fast.data._checks import (
    NumericLayout,
    check_known_ids,
    check_not_empty,
    read_csv_records,
    read_numeric_table,
    require_dir,
    require_file,
    resolve_duplicates,
    text_lines,
)
from recsys_fast.data.interactions import Interactions, make_items_frame, make_ratings_frame
from recsys_fast.data.manifest import SYNTH_MARKER, read_manifest
from recsys_fast.errors import DataFormatError, DatasetNotFoundError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
ML100K_SPLITS = ("ua", "ub", "u1", "u2", "u3", "u4", "u5")
_CANON = ("user_id", "item_id", "rating", "timestamp")
ML100K_LAYOUT = NumericLayout(sep="\t", names=_CANON, header=False)
ML1M_LAYOUT = NumericLayout(sep="::", names=_CANON, header=False)
# ML-10M's README: "5-star scale, with half-star increments" (unlike 100K and 1M).
ML10M_LAYOUT = NumericLayout(sep="::", names=_CANON, header=False, rating_min=0.5, rating_step=0.5)
CSV_COLUMNS = {"userId": "user_id", "movieId": "item_id", "rating": "rating", "timestamp": "timestamp"}
NO_GENRES = "(no genres listed)"


# -- public loaders ---------------------------------------------------------------------------
def load_ml100k(path: str | Path, *, duplicates: str = "error") -> Interactions:
    """Load MovieLens 100K from its folder (or its ``u.data``).

    Parameters
    ----------
    path : folder holding ``u.data``, ``u.item`` and optionally ``u.user``, ``u.genre``
        (or the path of ``u.data`` itself).
    duplicates : ``"error"`` (default) or ``"last"``; see :mod:`recsys_fast.data.interactions`.

    Raises
    ------
    DatasetNotFoundError
        A required file is missing.
    DataFormatError
        A file is malformed; the message names the file and line.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else _ml100k_dir(p)
    ratings_file = p if p.is_file() else folder / "u.data"
    items, users = _ml100k_side(folder)
    inter = _interactions(ratings_file, ML100K_LAYOUT, duplicates, items, users, "ml-100k")
    inter.meta.update(format="ml-100k")
    return _label_synthetic(inter, folder)


def load_ml100k_split(
    path: str | Path, split: str = "ua", *, duplicates: str = "error"
) -> tuple[Interactions, Interactions]:
    """Load one of the 100K train/test splits (``ua``, ``ub``, ``u1``..``u5``).

    Returns ``(train, test)`` from ``{split}.base`` and ``{split}.test``; both share one
    items frame (and users frame).
    """
    if split not in ML100K_SPLITS:
        raise ValueError(f"split={split!r}; expected one of {ML100K_SPLITS}")
    folder = _ml100k_dir(Path(path))
    items, users = _ml100k_side(folder)
    out = []
    for part in ("base", "test"):
        f = require_file(folder / f"{split}.{part}", f"the MovieLens 100K split file {split}.{part}")
        inter = _interactions(f, ML100K_LAYOUT, duplicates, items, users, f"ml-100k:{split}.{part}")
        inter.meta.update(format="ml-100k", split=split, part=part)
        out.append(_label_synthetic(inter, folder))
    return out[0], out[1]


def load_movielens(path: str | Path, *, duplicates: str = "error") -> Interactions:
    """Load any MovieLens release, detecting its format from the files in the folder.

    ``u.data`` -> 100K; ``ratings.dat`` (``::``) -> 1M (with ``users.dat``) or 10M;
    ``ratings.csv`` + ``movies.csv`` with header -> latest-small, latest, 20M, 25M.
    A ratings file may be given instead of the folder.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else require_dir(p, "a MovieLens folder")
    given = p.name if p.is_file() else None
    if given in {"u.data"} or (given and given.endswith((".base", ".test"))):
        return load_ml100k(p, duplicates=duplicates)
    if given is None and (folder / "u.data").is_file():
        return load_ml100k(folder, duplicates=duplicates)
    if given in {None, "ratings.dat"} and (folder / "ratings.dat").is_file():
        return _load_dat(folder, duplicates)
    if given in {None, "ratings.csv"} and (folder / "ratings.csv").is_file():
        return _load_csv(folder, duplicates)
    raise DatasetNotFoundError(
        f"{p}: no MovieLens ratings file found; expected one of u.data (100K), "
        "ratings.dat (1M, 10M) or ratings.csv (latest-small, latest, 20M, 25M)"
    )


def is_synthetic(path: str | Path) -> bool:
    """Whether the data set at ``path`` was written by ``recsys-fast data synth``.

    Parameters
    ----------
    path : a data set folder, or a file inside one (e.g. its ``u.data``).

    Returns
    -------
    bool
        True when the folder holds the synthetic-data manifest
        (:data:`~recsys_fast.data.manifest.SYNTH_MARKER`). Such a folder is never the real
        MovieLens data, even when some of its files came from it (``data synth --force``).
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    return (folder / SYNTH_MARKER).is_file()


def _label_synthetic(inter: Interactions, folder: Path) -> Interactions:
    """Name and mark ``inter`` as synthetic when ``folder`` holds the synthetic manifest."""
    if not is_synthetic(folder):
        inter.meta["synthetic"] = False
        return inter
    manifest = read_manifest(folder / SYNTH_MARKER) or {}
    base = str(manifest.get("dataset") or "synthetic")
    inter.name = base if inter.name == "ml-100k" else f"{base} ({inter.name.split(':', 1)[-1]})"
    inter.meta.update(synthetic=True, synthetic_manifest=str(folder / SYNTH_MARKER))
    return inter


# -- 100K side files ----------------------------------------------------------------------------
def _ml100k_dir(p: Path) -> Path:
    folder = require_dir(p, "the MovieLens 100K folder (u.data, u.item, u.user)")
    require_file(folder / "u.item", "u.item, the MovieLens 100K item list")
    return folder


def _ml100k_side(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    genre_file = folder / "u.genre"
    genres = read_ml100k_genres(genre_file) if genre_file.is_file() else ML100K_GENRES
    items = read_ml100k_items(require_file(folder / "u.item", "u.item"), genres)
    user_file = folder / "u.user"
    return items, (read_ml100k_users(user_file) if user_file.is_file() else None)


def read_ml100k_genres(path: Path) -> tuple[str, ...]:
    """Genre names from ``u.genre`` (``name|index``), in index order."""
    names: dict[int, str] = {}
    for lineno, text in text_lines(path, "latin-1"):
        fields = text.split("|")
        if len(fields) != 2 or not fields[1].strip().isdigit():
            raise DataFormatError(f"expected 'name|index', found {text!r}", path=path, line=lineno)
        names[int(fields[1])] = fields[0]
    if sorted(names) != list(range(len(names))):
        raise DataFormatError(f"genre indices {sorted(names)} are not 0..{len(names) - 1}", path=path)
    return tuple(names[i] for i in range(len(names)))


def read_ml100k_items(path: Path, genres: tuple[str, ...] = ML100K_GENRES) -> pd.DataFrame:
    """Items from ``u.item`` (latin-1, ``|``: id|title|release|video release|url|genre flags)."""
    n_fields = 5 + len(genres)
    ids, titles, genre_col, release, lines = [], [], [], [], []
    for lineno, text in text_lines(path, "latin-1"):
        fields = text.split("|")
        if len(fields) != n_fields:
            raise DataFormatError(
                f"expected {n_fields} fields separated by '|' (id|title|release date|video "
                f"release|url|{len(genres)} genre flags), found {len(fields)}",
                path=path,
                line=lineno,
            )
        item_id = _positive_int(fields[0], "item id", path, lineno)
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataFormatError(f"genre flags must be 0 or 1, found {flags}", path=path, line=lineno)
        ids.append(item_id)
        titles.append(fields[1])
        release.append(fields[2])
        genre_col.append("|".join(g for g, f in zip(genres, flags, strict=True) if f == "1"))
        lines.append(lineno)
    _check_unique(ids, lines, "item id", path)
    items = make_items_frame(ids, titles, genre_col, release_date=release)
    items.attrs["source"] = str(path)
    return items


def read_ml100k_users(path: Path) -> pd.DataFrame:
    """Users from ``u.user`` (``id|age|gender|occupation|zip``), indexed by user_id."""
    rows, lines = [], []
    for lineno, text in text_lines(path, "latin-1"):
        f = text.split("|")
        if len(f) != 5:
            raise DataFormatError(
                f"expected 5 fields (id|age|gender|occupation|zip), found {len(f)}",
                path=path,
                line=lineno,
            )
        uid = _positive_int(f[0], "user id", path, lineno)
        if not f[1].isdigit():
            raise DataFormatError(f"age is not an integer: {f[1]!r}", path=path, line=lineno)
        rows.append((uid, int(f[1]), f[2], f[3], f[4]))
        lines.append(lineno)
    _check_unique([r[0] for r in rows], lines, "user id", path)
    cols = ["user_id", "age", "gender", "occupation", "zip_code"]
    users = pd.DataFrame(rows, columns=cols).set_index("user_id")
    users.attrs["source"] = str(path)
    return users


# -- 1M / 10M -------------------------------------------------------------------------------------
def _load_dat(folder: Path, duplicates: str) -> Interactions:
    users_file = folder / "users.dat"
    is_1m = users_file.is_file()  # 1M ships users.dat, 10M does not
    items = _read_dat_movies(require_file(folder / "movies.dat", "movies.dat (MovieID::Title::Genres)"))
    users = _read_dat_users(users_file) if is_1m else None
    layout = ML1M_LAYOUT if is_1m else ML10M_LAYOUT
    name = "ml-1m" if is_1m else "ml-10m"
    inter = _interactions(folder / "ratings.dat", layout, duplicates, items, users, name)
    inter.meta.update(format=name, item_encoding=items.attrs.get("encoding"))
    return _label_synthetic(inter, folder)


def _dat_lines(path: Path) -> tuple[list[tuple[int, str]], str]:
    # 1M's movies.dat is latin-1, 10M's is UTF-8: take UTF-8 when it decodes, else latin-1.
    check_not_empty(path)
    try:
        path.read_bytes().decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    return text_lines(path, encoding), encoding


def _read_dat_movies(path: Path) -> pd.DataFrame:
    ids, titles, genres, lines = [], [], [], []
    numbered, encoding = _dat_lines(path)
    for lineno, text in numbered:
        f = text.split("::")
        if len(f) != 3:
            raise DataFormatError(
                f"expected 3 fields separated by '::' (MovieID::Title::Genres), found {len(f)}",
                path=path,
                line=lineno,
            )
        ids.append(_positive_int(f[0], "MovieID", path, lineno))
        titles.append(f[1])
        genres.append("" if f[2] == NO_GENRES else f[2])
        lines.append(lineno)
    _check_unique(ids, lines, "MovieID", path)
    items = make_items_frame(ids, titles, genres)
    items.attrs.update(encoding=encoding, source=str(path))
    return items


def _read_dat_users(path: Path) -> pd.DataFrame:
    rows, lines = [], []
    for lineno, text in _dat_lines(path)[0]:
        f = text.split("::")
        if len(f) != 5:
            raise DataFormatError(
                f"expected 5 fields (UserID::Gender::Age::Occupation::Zip-code), found {len(f)}",
                path=path,
                line=lineno,
            )
        uid = _positive_int(f[0], "UserID", path, lineno)
        if not (f[2].isdigit() and f[3].isdigit()):
            raise DataFormatError(f"Age/Occupation not integers: {f[2:4]}", path=path, line=lineno)
        rows.append((uid, f[1], int(f[2]), int(f[3]), f[4]))
        lines.append(lineno)
    _check_unique([r[0] for r in rows], lines, "UserID", path)
    cols = ["user_id", "gender", "age", "occupation", "zip_code"]
    users = pd.DataFrame(rows, columns=cols).set_index("user_id")
    users.attrs["source"] = str(path)
    return users


# -- CSV releases (latest-small, latest, 20M, 25M) ----------------------------------------------
def _load_csv(folder: Path, duplicates: str) -> Interactions:
    ratings_file = folder / "ratings.csv"
    items = read_movies_csv(require_file(folder / "movies.csv", "movies.csv (movieId,title,genres)"))
    layout = _csv_layout(ratings_file)
    name = folder.name if folder.name.startswith("ml-") else "movielens"
    inter = _interactions(ratings_file, layout, duplicates, items, None, name)
    inter.meta.update(format="movielens-csv")
    return _label_synthetic(inter, folder)


def load_ratings_small(path: str | Path, *, duplicates: str = "error") -> Interactions:
    """The Movies Dataset's ``ratings_small.csv`` (``userId,movieId,rating,timestamp``: a
    MovieLens subset, 0.5-5 stars), from its folder or the file. It comes without a movie
    list, so the items are the rated movie ids (titles blank)."""
    p = Path(path)
    ratings_file = p if p.is_file() else p / "ratings_small.csv"
    require_file(ratings_file, "ratings_small.csv (userId,movieId,rating,timestamp)")
    layout = _csv_layout(ratings_file)
    df = read_numeric_table(ratings_file, layout)
    items = make_items_frame(np.unique(df["item_id"].to_numpy(np.int64)))
    items.attrs["source"] = str(ratings_file)
    inter = _interactions(ratings_file, layout, duplicates, items, None, "movies-ratings-small")
    inter.meta.update(format="movielens-csv")
    return inter


def _csv_layout(path: Path) -> NumericLayout:
    check_not_empty(path)
    with open(path, "rb") as f:
        first = f.readline()
    try:
        header = [h.strip().strip('"') for h in first.decode("utf-8-sig").strip().split(",")]
    except UnicodeDecodeError:
        raise DataFormatError("header is not valid UTF-8", path=path, line=1) from None
    missing = [c for c in ("userId", "movieId", "rating") if c not in header]
    extra = [c for c in header if c not in CSV_COLUMNS]
    if missing or extra:
        raise DataFormatError(
            f"header {header}: missing column(s) {missing}, unexpected column(s) {extra}; "
            "expected userId,movieId,rating[,timestamp]",
            path=path,
            line=1,
        )
    names = tuple(CSV_COLUMNS[h] for h in header)
    return NumericLayout(sep=",", names=names, header=True, rating_min=0.5, rating_step=0.5)


def read_movies_csv(path: Path) -> pd.DataFrame:
    """Items from a MovieLens ``movies.csv`` (``movieId,title,genres``; UTF-8, quoted titles)."""
    rec = read_csv_records(path, ("movieId", "title", "genres"))
    raw_ids = rec.column("movieId")
    ids = pd.to_numeric(pd.Series(raw_ids, dtype=object), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(ids) | (ids < 1) | (ids != np.round(ids))
    if bad.any():
        k = int(np.argmax(bad))
        raise DataFormatError(
            f"movieId is not a positive integer: {raw_ids[k]!r}", path=path, line=rec.lines[k]
        )
    ids_int = ids.astype(np.int64)
    _check_unique(ids_int, rec.lines, "movieId", path)
    genres = ["" if g == NO_GENRES else g for g in rec.column("genres")]
    items = make_items_frame(ids_int, rec.column("title"), genres)
    items.attrs["source"] = str(path)
    return items


# -- shared -----------------------------------------------------------------------------------
def _interactions(
    ratings_file: Path,
    layout: NumericLayout,
    duplicates: str,
    items: pd.DataFrame,
    users: pd.DataFrame | None,
    name: str,
) -> Interactions:
    require_file(ratings_file, f"the {name} ratings file ({layout.sep!r}-separated "
                 f"{', '.join(layout.names)})")
    df = read_numeric_table(ratings_file, layout)
    # Foreign keys first, while row k is still physical line k + first_line.
    for col, side, what in (("item_id", items, "item list"), ("user_id", users, "user list")):
        if side is not None:
            catalogue = side.attrs.get("source", f"the {what}")
            check_known_ids(
                df[col].to_numpy(), side.index, col, ratings_file, layout.first_line, catalogue
            )
    df, n_over = resolve_duplicates(df, ratings_file, layout.first_line, duplicates)
    ts = df["timestamp"] if "timestamp" in df else None
    ratings = make_ratings_frame(df["user_id"], df["item_id"], df["rating"], ts)
    meta = {"path": str(ratings_file), "rating_scale": layout.scale()}
    return Interactions(ratings, items, users, name=name, n_duplicates_overwritten=n_over, meta=meta)


def _positive_int(text: str, what: str, path: Path, lineno: int) -> int:
    t = text.strip()
    if not t.isdigit() or int(t) < 1:
        raise DataFormatError(f"{what} is not a positive integer: {text!r}", path=path, line=lineno)
    return int(t)


def _check_unique(ids, lines: list[int], what: str, path: Path) -> None:
    s = pd.Series(np.asarray(ids))
    dup = s.duplicated(keep="first").to_numpy()
    if dup.any():
        k = int(np.argmax(dup))
        j = int(np.flatnonzero(s.to_numpy()[:k] == s.iat[k])[0])
        raise DataFormatError(
            f"{what} {s.iat[k]} appears twice, on lines {lines[j]} and {lines[k]}",
            path=path,
            line=lines[k],
        )
