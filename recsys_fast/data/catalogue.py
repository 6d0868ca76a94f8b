"""The named data sets: where each comes from, how it is checked, and how it is loaded.

This is the one place a data set's URL, size and SHA-256 live. The GroupLens archives are
downloaded by :func:`~recsys_fast.data.download.fetch` and verified against the sizes and
checksums recorded in tensorflow/datasets (``url_checksums/movielens.txt``). GroupLens
publishes no checksum for ml-10m, so it is fetched only with ``verify=False``
(``--no-verify``). The Kaggle files and the retail sample have no direct download (a login,
or no stated licence): point ``--path`` at a copy, or put it in the cache folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsys_fast.data.download import FetchResult, cache_dir, check_cached_folder, fetch
from recsys_fast.data.interactions import Interactions
from recsys_fast.data.metadata import load_movies_metadata, load_retail, load_tmdb5000
from recsys_fast.data.movielens import load_ml100k, load_movielens
from recsys_fast.errors import DatasetMismatchError, DatasetNotFoundError

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class DatasetSpec:
    """One catalogue entry.

    ``folder`` is the folder inside the zip, and so inside the cache; ``files`` the files a
    ``--path`` folder must hold; ``url``/``size``/``sha256`` are None where unknown.
    """

    name: str
    description: str
    loader: Callable[..., Interactions | pd.DataFrame]
    folder: str
    files: tuple[str, ...]
    kind: str = "ratings"  # "ratings" -> Interactions, "items" -> items DataFrame
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    note: str = ""
    counts: tuple[int, int, int] | None = None  # users, rated items, ratings of the release

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url else f"{self.name}.zip"

    @property
    def verification(self) -> str:
        if not self.url:
            return "local only"
        return "sha256" if self.sha256 else "none (use --no-verify)"


def _grouplens(name: str, description: str, folder: str, size: int | None, sha: str | None,
               files: tuple[str, ...], counts: tuple[int, int, int],
               loader=load_movielens) -> DatasetSpec:
    return DatasetSpec(name, description, loader, folder, files, "ratings",
                       f"{GROUPLENS}{name}.zip", size, sha, counts=counts)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _grouplens(
            "ml-100k",
            "MovieLens 100K (1998): 100,000 ratings 1-5 by 943 users on 1,682 movies; "
            "ua/ub/u1-u5 train/test splits",
            "ml-100k", 4924029,
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            ("u.data", "u.item", "u.user"), (943, 1682, 100_000), loader=load_ml100k,
        ),
        _grouplens(
            "ml-latest-small",
            "MovieLens latest-small (2018): 100,836 ratings 0.5-5 by 610 users on 9,724 movies",
            "ml-latest-small", 978202,
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            ("ratings.csv", "movies.csv"), (610, 9724, 100_836),
        ),
        _grouplens(
            "ml-1m",
            "MovieLens 1M (2003): 1,000,209 ratings 1-5 by 6,040 users on 3,706 movies",
            "ml-1m", 5917549,
            "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            ("ratings.dat", "movies.dat", "users.dat"), (6040, 3706, 1_000_209),
        ),
        _grouplens(
            "ml-10m",
            "MovieLens 10M (2009): 10,000,054 ratings 0.5-5 by 69,878 users on 10,677 movies "
            "(no published checksum)",
            "ml-10M100K", None, None, ("ratings.dat", "movies.dat"),
            (69_878, 10_677, 10_000_054),
        ),
        _grouplens(
            "ml-20m",
            "MovieLens 20M (2015): 20,000,263 ratings 0.5-5 by 138,493 users on 26,744 movies",
            "ml-20m", 198702078,
            "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            ("ratings.csv", "movies.csv"), (138_493, 26_744, 20_000_263),
        ),
        _grouplens(
            "ml-25m",
            "MovieLens 25M (2019): 25,000,095 ratings 0.5-5 by 162,541 users on 59,047 movies",
            "ml-25m", 261978986,
            "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            ("ratings.csv", "movies.csv"), (162_541, 59_047, 25_000_095),
        ),
        DatasetSpec(
            "tmdb-5000",
            "TMDB 5000 movies (Kaggle): 4,803 movies with overview, genres, vote_count, "
            "vote_average (stand-in for The Movies Dataset's vote columns)",
            load_tmdb5000, "tmdb-5000-movies", ("tmdb_5000_movies.csv",), "items",
            note="Kaggle needs a login: download tmdb_5000_movies.csv from "
            "https://www.kaggle.com/datasets/tmdb/tmdb-movie-metadata by hand.",
        ),
        DatasetSpec(
            "retail-sample",
            "Retail sample-data.csv: 500 outdoor-clothing product descriptions (id,description)",
            load_retail, "retail-sample-data", ("sample-data.csv",), "items",
            note="No licence is stated for it: take sample-data.csv from the GitHub repository "
            "groveco/content-engine yourself.",
        ),
        DatasetSpec(
            "movies-metadata",
            "The Movies Dataset (Kaggle) movies_metadata.csv: ~45,000 movies with overview, "
            "genres, vote_count, vote_average (34,445,126 bytes, SHA-256 37ec3227...)",
            load_movies_metadata, "movies-dataset", ("movies_metadata.csv",), "items",
            note="Kaggle needs a login: download movies_metadata.csv from "
            "https://www.kaggle.com/datasets/rounakbanik/the-movies-dataset by hand.",
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The catalogue entry called ``name``; ValueError listing the names when unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


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
    return check_counts(spec, where, spec.loader(where, **kwargs))


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
    obj.name = spec.name
    return obj


def info(name: str, path: str | Path | None = None, *, cache: str | Path | None = None) -> dict:
    """Summary of a data set: counts, density, rating histogram (ratings) or item counts."""
    spec = get_spec(name)
    where = resolve_path(name, path, cache)
    check_files(spec, where)
    obj = check_counts(spec, where, spec.loader(where))
    out = {"name": name, "path": str(where), "description": spec.description}
    if isinstance(obj, Interactions):
        out.update(obj.summary())
        out["synthetic"] = bool(obj.meta.get("synthetic"))
        out["name"] = (f"{obj.name} (written by `recsys-fast data synth`, not the real {name})"
                       if out["synthetic"] else name)
        out["n_duplicates_overwritten"] = obj.n_duplicates_overwritten
        return out
    out.update(
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
