"""Vectorised IMDB weighted rating: the course's simple recommender without ``DataFrame.apply``.

``WR = v/(v+m) * R + m/(m+v) * C`` with v the vote count, R the vote average, C the mean vote
over the catalogue and m a quantile of the vote counts. Evaluated element-wise in float64 with
the same operations in the same order as the course's row function, so the scores are
bit-identical to ``naive.simple.weighted_rating_chart`` and the chart sorts the same way.
NaN follows pandas: skipped by the mean and the quantile, never passing ``v >= m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_fast.backend import Backend, get_backend, to_host
from recsys_fast.naive.simple import _numeric_votes  # the one place the vote columns are checked


@dataclass(frozen=True)
class WeightedRating:
    """Scores for every row plus the chart's cut-off.

    Attributes
    ----------
    scores : ndarray of float64
        Weighted rating of every row (NaN where a vote value is NaN).
    mask : ndarray of bool
        Rows that make the chart (``vote_count >= m``).
    m : float
        The ``quantile`` of the vote counts.
    C : float
        The mean vote average.
    """

    scores: Any
    mask: Any
    m: float
    C: float


def weighted_rating(
    vote_count: Any,
    vote_average: Any,
    quantile: float = 0.90,
    *,
    backend: str | Backend = "cpu",
) -> WeightedRating:
    """IMDB weighted rating of every row, vectorised.

    Parameters
    ----------
    vote_count, vote_average : 1-D array-like of numbers, same length
    quantile : float in [0, 1]
        ``m`` is this quantile (linear interpolation, NaN skipped) of ``vote_count``.
    backend : "cpu", "gpu" or Backend

    Returns
    -------
    WeightedRating

    Raises
    ------
    ValueError
        Mismatched or empty inputs, quantile outside [0, 1], negative or infinite vote counts,
        an infinite vote average, or a column with no number at all.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    xp = get_backend(backend).xp
    v = xp.asarray(vote_count, dtype=xp.float64)
    R = xp.asarray(vote_average, dtype=xp.float64)
    if v.ndim != 1 or R.ndim != 1 or v.shape != R.shape:
        raise ValueError(
            f"vote_count {tuple(v.shape)} and vote_average {tuple(R.shape)} must be 1-D arrays "
            "of the same length"
        )
    if v.size == 0:
        raise ValueError("no rows to rate")
    for name, col in (("vote_count", v), ("vote_average", R)):
        inf = xp.flatnonzero(xp.isinf(col))
        if inf.size:
            raise ValueError(
                f"{name} is infinite at positions {inf[:10].tolist()} "
                f"(e.g. {float(col[inf[0]])}); give finite numbers or NaN for unknown"
            )
    neg = xp.flatnonzero(v < 0)
    if neg.size:
        raise ValueError(f"negative vote_count at positions {neg[:10].tolist()}")
    v_ok = v[~xp.isnan(v)]
    if v_ok.size == 0 or bool(xp.isnan(R).all()):
        raise ValueError("vote_count or vote_average holds no number at all")
    C = float(xp.nanmean(R))
    m = float(xp.quantile(v_ok, quantile))
    scores = (v / (v + m) * R) + (m / (m + v) * C)
    return WeightedRating(scores=scores, mask=v >= m, m=m, C=C)


def weighted_rating_chart(
    metadata: pd.DataFrame,
    quantile: float = 0.90,
    top: int | None = None,
    *,
    backend: str | Backend = "cpu",
) -> pd.DataFrame:
    """The course's top chart, equal (values and order) to ``naive.simple.weighted_rating_chart``.

    Parameters
    ----------
    metadata : DataFrame
        Columns ``title``, ``vote_count``, ``vote_average`` (others are kept).
    quantile : float
    top : int, optional
    backend : "cpu", "gpu" or Backend
        Where the scores are computed (the frame stays on the host; scores and mask come back).

    Returns
    -------
    DataFrame
        Qualifying rows plus ``score``, sorted by score descending; ``attrs`` has m, C, quantile.

    Raises
    ------
    ValueError
        As the naive chart: bad columns or values, or a NaN score (rows named).
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    if top is not None and top < 0:
        raise ValueError(f"top must be >= 0 or None, got {top!r}")
    md = _numeric_votes(metadata)
    wr = weighted_rating(
        md["vote_count"].to_numpy(), md["vote_average"].to_numpy(), quantile, backend=backend
    )
    mask = to_host(wr.mask)
    q = md.loc[mask].copy()
    q["score"] = to_host(wr.scores)[mask]
    nan_score = q["score"].isna()
    if nan_score.any():
        rows = list(q.index[nan_score][:10])
        raise ValueError(
            f"weighted rating is NaN at rows {rows} (NaN vote_average, or vote_count + m == 0 "
            f"with m={wr.m!r})"
        )
    # the same pandas sort as the course, on bit-identical scores: the same order
    q = q.sort_values("score", ascending=False)
    if top is not None:
        q = q.head(top)
    q.attrs.update({"m": wr.m, "C": wr.C, "quantile": float(quantile)})
    return q


def item_popularity(
    train: Any, quantile: float = 0.90, *, backend: str | Backend = "cpu"
) -> WeightedRating:
    """Weighted rating of every item of a user x item rating matrix (0 = unrated).

    ``vote_count`` is each item's number of ratings and ``vote_average`` their mean (C over
    rated items only); an unrated item scores C. Used as the popularity fallback of the hybrids.
    """
    from recsys_fast.kernels.predict import as_train_csr

    be = get_backend(backend)
    xp = be.xp
    R = as_train_csr(train, dtype=np.float64, backend=be)
    n_items = R.shape[1]
    counts = xp.bincount(R.indices, minlength=n_items).astype(xp.float64)
    sums = xp.bincount(R.indices, weights=R.data, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = xp.where(counts > 0, sums / counts, xp.nan)
    wr = weighted_rating(counts, avg, quantile, backend=be)
    scores = xp.where(counts > 0, wr.scores, wr.C)
    return WeightedRating(scores=scores, mask=wr.mask, m=wr.m, C=wr.C)
