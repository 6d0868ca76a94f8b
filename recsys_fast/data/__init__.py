"""Data layer: loaders for real data sets, download + checksum cache, synthetic generator."""

from recsys_fast.data.interactions import (
    ITEM_COLUMNS,
    RATING_COLUMNS,
    Interactions,
    make_items_frame,
    make_ratings_frame,
)

__all__ = [
    "ITEM_COLUMNS",
    "RATING_COLUMNS",
    "Interactions",
    "make_items_frame",
    "make_ratings_frame",
]

# Real-data loaders, catalogue and download cache.
from recsys_fast.data.catalogue import (  # noqa: E402
    DATASETS,
    DatasetSpec,
    get_spec,
    info,
    list_datasets,
    load,
)
from recsys_fast.data.download import FetchResult, cache_dir, fetch  # noqa: E402
from recsys_fast.data.loaders import (  # noqa: E402
    ML100K_SPLITS,
    load_ml100k,
    load_ml100k_split,
    load_movielens,
    load_movies_metadata,
    load_ratings_small,
    load_retail,
    load_tmdb5000,
)

__all__ += [
    "DATASETS",
    "DatasetSpec",
    "FetchResult",
    "ML100K_SPLITS",
    "cache_dir",
    "fetch",
    "get_spec",
    "info",
    "list_datasets",
    "load",
    "load_ml100k",
    "load_ml100k_split",
    "load_movielens",
    "load_movies_metadata",
    "load_ratings_small",
    "load_retail",
    "load_tmdb5000",
]

# Synthetic data at any scale, and writers for the real formats.
from recsys_fast.data.synthetic import (  # noqa: E402
    SCALES,
    SHAPES,
    SyntheticSpec,
    generate,
    shaped,
    spec_for,
    synthetic_documents,
)
from recsys_fast.data.writers import write_ml100k_format, write_retail_csv  # noqa: E402

__all__ += [
    "SCALES",
    "SHAPES",
    "SyntheticSpec",
    "generate",
    "shaped",
    "spec_for",
    "synthetic_documents",
    "write_ml100k_format",
    "write_retail_csv",
]
