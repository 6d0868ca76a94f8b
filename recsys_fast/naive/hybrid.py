"""Naive reference: the course's hybrids composed by hand, the way the course writes its code.

The course describes a switching and a mixed hybrid but codes neither; this is their
composition from course-style pieces: each user's dense rating row, dense matrix-vector
predictions, the IMDB weighted rating by ``DataFrame.apply``, and a Python loop over every
item of every user that picks the scorer and sorts the candidates. :func:`prepare` takes the
fitted neighbour matrices (the course has no top-k CF or content matrix to build them from),
dense as the course's matrices are, or sparse where dense ones do not fit:

* CF (item-based, as ``FixedCF("item")``): ``mu_i + sum_j W_ij (r_uj - mu_j) / sum_j |W_ij|``
  over the items j the user rated, ``mu_i`` where no weight is found;
* content: ``mu_u + sum_j C_ij (r_uj - mu_u) / sum_j |C_ij|``, defined where the sum of weights
  is positive;
* popularity: every item's weighted rating (C for an unrated item).

Lists are sorted by score descending, then item ascending; rated items are never listed, and a
list is padded with (-1, NaN) when it runs out. The optimised
:mod:`recsys_fast.kernels.hybrid` is checked against these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

from recsys_fast.naive.simple import weighted_rating

SOURCES = ("cf", "content", "popularity")


def popularity(vote_count: np.ndarray, vote_average: np.ndarray,
               quantile: float = 0.90) -> np.ndarray:
    """Weighted rating of every item by ``apply(axis=1)``: ``m`` the quantile of every item's
    count, C the mean over rated items; C for an unrated item."""
    items = pd.DataFrame({"vote_count": vote_count.astype(float), "vote_average": vote_average})
    C = items["vote_average"].mean()  # pandas skips the NaN of unrated items
    m = items["vote_count"].quantile(quantile)
    score = items.apply(weighted_rating, axis=1, m=m, C=C)
    return np.where(vote_count > 0, score.to_numpy(), C)


@dataclass
class Inputs:
    """What both hybrids read: ratings (sparse users x items), neighbour matrices, means."""

    ratings: Any
    neighbours: Any  # items x items, row i: item i's CF neighbours j with weight W_ij
    content: Any  # items x items content similarity, or None
    abs_neighbours: Any
    abs_content: Any
    item_mean: np.ndarray
    user_mean: np.ndarray
    item_counts: np.ndarray
    user_counts: np.ndarray
    popularity: np.ndarray


def prepare(ratings: Any, neighbours: Any, content: Any = None,
            quantile: float = 0.90) -> Inputs:
    """Means (the global mean where nothing is rated), counts and popularity of ``ratings``."""
    R = scipy.sparse.csr_matrix(ratings, dtype=np.float64)
    mean = R.data.mean()
    item_counts = np.diff(R.tocsc().indptr)
    user_counts = np.diff(R.indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        item_avg = np.asarray(R.sum(axis=0)).ravel() / item_counts
        user_avg = np.asarray(R.sum(axis=1)).ravel() / user_counts
    return Inputs(R, neighbours, content, abs(neighbours),
                  None if content is None else abs(content),
                  np.where(item_counts > 0, item_avg, mean),
                  np.where(user_counts > 0, user_avg, mean),
                  item_counts, user_counts, popularity(item_counts, item_avg, quantile))


def _row(inp: Inputs, u: int) -> np.ndarray:
    return inp.ratings[u].toarray().ravel()


def _cf_row(inp: Inputs, row: np.ndarray) -> np.ndarray:
    rated = row != 0
    centred = np.where(rated, row - inp.item_mean, 0.0)
    num = inp.neighbours @ centred
    den = inp.abs_neighbours @ rated.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, inp.item_mean + num / den, inp.item_mean)


def _content_row(inp: Inputs, row: np.ndarray, u: int) -> tuple[np.ndarray, np.ndarray]:
    if inp.content is None:
        return np.zeros(row.size), np.zeros(row.size)
    rated = row != 0
    centred = np.where(rated, row - inp.user_mean[u], 0.0)
    return inp.content @ centred, inp.abs_content @ rated.astype(float)


def _best(candidates: list[tuple[float, int, int]], n: int) -> list[tuple[float, int, int]]:
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates[:n]


def _rows(lists: list[list[tuple[float, int, int]]], n: int):
    items = np.full((len(lists), n), -1, dtype=np.int64)
    scores = np.full((len(lists), n), np.nan)
    sources = np.full((len(lists), n), -1, dtype=np.int8)
    for r, best in enumerate(lists):
        for p, (score, item, source) in enumerate(best):
            items[r, p], scores[r, p], sources[r, p] = item, score, source
    return items, scores, sources


def switching_recommend(inp: Inputs, users, n: int, *, min_ratings: int = 5):
    """Top-``n`` unrated items per user of ``users``: CF when the user and the item each have
    ``min_ratings`` ratings, else content where defined, else popularity.

    Returns ``(items, scores, sources)`` arrays of shape ``(len(users), n)``; ``sources`` index
    :data:`SOURCES` (-1 pads).
    """
    lists = []
    for u in users:
        row = _row(inp, u)
        cf = _cf_row(inp, row)
        num, den = _content_row(inp, row, u)
        candidates = []
        for i in range(row.size):
            if row[i] != 0:
                continue
            if inp.user_counts[u] >= min_ratings and inp.item_counts[i] >= min_ratings:
                candidates.append((cf[i], i, 0))
            elif den[i] > 0:
                candidates.append((inp.user_mean[u] + num[i] / den[i], i, 1))
            else:
                candidates.append((inp.popularity[i], i, 2))
        lists.append(_best(candidates, n))
    return _rows(lists, n)


def mixed_recommend(inp: Inputs, users, n: int):
    """Merged top-``n`` unrated items per user: the CF list and the content list (popularity
    without a content matrix), one from each in turn, CF first, an item listed once.

    Returns ``(items, scores, sources)`` as :func:`switching_recommend`.
    """
    lists = []
    for u in users:
        row = _row(inp, u)
        cf = _cf_row(inp, row)
        num, den = _content_row(inp, row, u)
        first, second = [], []
        for i in range(row.size):
            if row[i] != 0:
                continue
            first.append((cf[i], i, 0))
            if inp.content is None:
                second.append((inp.popularity[i], i, 2))
            elif den[i] > 0:
                second.append((inp.user_mean[u] + num[i] / den[i], i, 1))
        first, second = _best(first, n), _best(second, n)
        merged, taken = [], set()
        while len(merged) < n and (first or second):
            for source in (first, second):
                while source:
                    candidate = source.pop(0)
                    if candidate[1] not in taken:
                        taken.add(candidate[1])
                        merged.append(candidate)
                        break
                if len(merged) == n:
                    break
        lists.append(merged)
    return _rows(lists, n)
