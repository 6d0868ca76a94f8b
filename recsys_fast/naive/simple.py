"""Naive reference: the course's simple recommender (IMDB weighted rating).

The course code, kept as it is (row-wise ``DataFrame.apply``)::

    C = md['vote_average'].mean()
    m = md['vote_count'].quantile(0.90)
    q = md.copy().loc[md['vote_count'] >= m]
    q['score'] = q.apply(weighted_rating, axis=1)
    q = q.sort_values('score', ascending=False)

Missing values follow the course's pandas semantics, which is what ``read_csv`` gives for the
Kaggle ``movies_metadata.csv`` (a few malformed lines leave NaN in the vote columns): NaN is
skipped by ``mean``/``quantile`` and a NaN ``vote_count`` never passes ``>= m``. Where the course
would silently produce a NaN score (NaN ``vote_average`` on a qualifying row, or ``0/0`` when
``m == 0``) we raise instead, naming the rows. Text that is not a number raises too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VOTE_COLUMNS = ("vote_count", "vote_average")


def weighted_rating(x: pd.Series, m: float, C: float) -> float:
    """IMDB weighted rating of one row: ``v/(v+m) * R + m/(m+v) * C``.

    Parameters
    ----------
    x : Series
        One row with ``vote_count`` (v) and ``vote_average`` (R).
    m : float
        Minimum votes to be listed (the course's 90th percentile of ``vote_count``).
    C : float
        Mean vote across the whole catalogue.
    """
    v = x["vote_count"]
    R = x["vote_average"]
    return (v / (v + m) * R) + (m / (m + v) * C)


def _rows(index: pd.Index, limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in list(index[:limit]))
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"[{shown}{more}]"


def _numeric_votes(metadata: pd.DataFrame) -> pd.DataFrame:
    """Check the vote columns and return a copy with them as float (NaN kept)."""
    if not isinstance(metadata, pd.DataFrame):
        raise TypeError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
    missing = [c for c in ("title", *VOTE_COLUMNS) if c not in metadata.columns]
    if missing:
        raise ValueError(f"metadata lacks columns {missing} (has {list(metadata.columns)[:20]})")
    if len(metadata) == 0:
        raise ValueError("metadata is empty: no movies to rank")
    md = metadata.copy()
    for col in VOTE_COLUMNS:
        raw = md[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna()
        if bad.any():
            raise ValueError(
                f"column {col!r} holds non-numeric values at rows {_rows(md.index[bad])}, "
                f"e.g. {raw[bad].iloc[0]!r}"
            )
        md[col] = num.astype(np.float64)
    for col in VOTE_COLUMNS:
        inf = np.isinf(md[col])
        if inf.any():
            raise ValueError(
                f"column {col!r} is infinite at rows {_rows(md.index[inf])}; give finite "
                "numbers or NaN for unknown"
            )
    neg = md["vote_count"] < 0
    if neg.any():
        raise ValueError(f"negative vote_count at rows {_rows(md.index[neg])}")
    for col in VOTE_COLUMNS:
        if md[col].isna().all():
            raise ValueError(f"column {col!r} is entirely NaN: nothing to rank")
    return md


def weighted_rating_chart(
    metadata: pd.DataFrame, quantile: float = 0.90, top: int | None = None
) -> pd.DataFrame:
    """The course's top chart: movies with ``vote_count >= m``, ranked by weighted rating.

    Parameters
    ----------
    metadata : DataFrame
        Columns ``title``, ``vote_count``, ``vote_average`` (others are kept).
    quantile : float
        ``m`` is this quantile of ``vote_count`` (0.90 in the course).
    top : int, optional
        Keep only the first ``top`` rows.

    Returns
    -------
    DataFrame
        The qualifying rows plus a ``score`` column, sorted by score descending; ``attrs``
        holds ``m`` and ``C``.

    Raises
    ------
    ValueError
        Missing columns, empty frame, non-numeric, negative or infinite votes, or a NaN score
        (rows named).
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    if top is not None and top < 0:
        raise ValueError(f"top must be >= 0 or None, got {top!r}")
    md = _numeric_votes(metadata)
    C = md["vote_average"].mean()
    m = md["vote_count"].quantile(quantile)
    q = md.copy().loc[md["vote_count"] >= m]
    # Kept as the course wrote it: one Python call per row. apply forwards m and C as kwargs
    # (the course bound them as default arguments instead).
    # Never empty: m lies between the smallest and largest non-NaN vote_count.
    q["score"] = q.apply(weighted_rating, axis=1, m=m, C=C)
    nan_score = q["score"].isna()
    if nan_score.any():
        raise ValueError(
            f"weighted rating is NaN at rows {_rows(q.index[nan_score])} "
            f"(NaN vote_average, or vote_count + m == 0 with m={m!r})"
        )
    q = q.sort_values("score", ascending=False)
    if top is not None:
        q = q.head(top)
    q.attrs.update({"m": float(m), "C": float(C), "quantile": float(quantile)})
    return q


def vote_stats_from_ratings(ratings: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per-item ``vote_count`` and ``vote_average`` computed from a ratings set.

    Parameters
    ----------
    ratings : DataFrame
        Columns ``item_id`` and ``rating`` (the :class:`~recsys_fast.data.Interactions` form).
    items : DataFrame
        Indexed by ``item_id`` with a ``title`` column; items absent from it get title ``""``.

    Returns
    -------
    DataFrame
        Indexed by ``item_id`` (only items with at least one rating), columns ``title``,
        ``vote_count`` (int64), ``vote_average`` (float64); ready for
        :func:`weighted_rating_chart`.
    """
    missing = [c for c in ("item_id", "rating") if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings lack columns {missing} (has {list(ratings.columns)})")
    if "title" not in items.columns:
        raise ValueError(f"items lack column 'title' (has {list(items.columns)})")
    if len(ratings) == 0:
        raise ValueError("ratings is empty: no votes to count")
    nan = ratings["rating"].isna()
    if nan.any():
        raise ValueError(f"NaN rating at rows {_rows(ratings.index[nan])}")
    grouped = ratings.groupby("item_id", sort=True)["rating"]
    stats = pd.DataFrame(
        {
            "vote_count": grouped.size().astype(np.int64),
            "vote_average": grouped.mean().astype(np.float64),
        }
    )
    titles = items["title"].reindex(stats.index).fillna("")
    stats.insert(0, "title", titles)
    stats.index.name = "item_id"
    return stats
