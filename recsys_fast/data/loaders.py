"""All real-data loaders in one import (they live in :mod:`.movielens` and :mod:`.metadata`)."""

from recsys_fast.data.metadata import load_movies_metadata, load_retail, load_tmdb5000
from recsys_fast.data.movielens import (
    ML100K_SPLITS,
    load_ml100k,
    load_ml100k_split,
    load_movielens,
    load_ratings_small,
)

__all__ = [
    "ML100K_SPLITS",
    "load_ml100k",
    "load_ml100k_split",
    "load_movielens",
    "load_movies_metadata",
    "load_ratings_small",
    "load_retail",
    "load_tmdb5000",
]
