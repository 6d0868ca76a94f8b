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
