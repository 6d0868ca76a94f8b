"""The catalogue's table: one :class:`DatasetSpec` per named data set (URL, size, SHA-256, files,
loader). A leaf module, so that both :mod:`.download` and :mod:`.catalogue` can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from recsys_fast.data.interactions import Interactions
from recsys_fast.data.metadata import (
    load_movie_keywords,
    load_movies_metadata,
    load_retail,
    load_tmdb5000,
)
from recsys_fast.data.movielens import load_ml100k, load_movielens, load_ratings_small

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
    # (file, size, SHA-256) of the release's ratings: a copy with the counts but other
    # content (a synthetic folder that lost its marker, an altered copy) is not the release
    release_files: tuple[tuple[str, int, str], ...] = ()

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
               loader=load_movielens, release_files=()) -> DatasetSpec:
    return DatasetSpec(name, description, loader, folder, files, "ratings",
                       f"{GROUPLENS}{name}.zip", size, sha, counts=counts,
                       release_files=release_files)


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
            # u.data of the release (git blob 16ef21ed827cae1a3f71e89e23cffb5a8f44baae, the
            # same in three independent copies of ml-100k.zip's contents)
            release_files=(("u.data", 1_979_173,
                            "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),),
        ),
        _grouplens(
            "ml-latest-small",
            "MovieLens latest-small (2018): 100,836 ratings 0.5-5 by 610 users on 9,724 movies",
            "ml-latest-small", 978202,
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            ("ratings.csv", "movies.csv"), (610, 9724, 100_836),
            # ratings.csv inside the official ml-latest-small.zip (SHA-256 above)
            release_files=(("ratings.csv", 2_483_723,
                            "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"),),
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
            "movies-ratings-small",
            "The Movies Dataset (Kaggle) ratings_small.csv: 100,004 ratings 0.5-5 by 671 users "
            "on 9,066 movies (a MovieLens subset)",
            load_ratings_small, "movies-dataset", ("ratings_small.csv",), "ratings",
            counts=(671, 9066, 100_004),
            note="Kaggle needs a login: download ratings_small.csv from "
            "https://www.kaggle.com/datasets/rounakbanik/the-movies-dataset by hand.",
        ),
        DatasetSpec(
            "movie-keywords",
            "The Movies Dataset (Kaggle) keywords.csv: TMDB keyword lists; the 31,092 distinct "
            "movies with keywords, as documents for the content recommender",
            load_movie_keywords, "movies-dataset", ("keywords.csv",), "items",
            note="Kaggle needs a login: download keywords.csv from "
            "https://www.kaggle.com/datasets/rounakbanik/the-movies-dataset by hand.",
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
