"""Accuracy metrics: RMSE and MAE of rating predictions; precision, recall, nDCG at k and
catalogue coverage of top-N lists.

Top-N conventions: ``recommended`` is an ``(n_users, k)`` int array, best first, ``-1`` for
an empty slot; ``relevant`` holds, per user, the held-out items (any rating counts as
relevant). Per user: precision@k = hits / k (empty slots count as misses), recall@k =
hits / |relevant|, nDCG@k = DCG / ideal DCG with binary gains and ``1 / log2(rank + 1)``
discounts (rank from 1). Each is averaged over the users with at least one relevant item.
Coverage = distinct items recommended to anyone / catalogue size. Per user, precision, recall and
nDCG equal ranx's ``precision@k``, ``recall@k`` and ``ndcg@k`` to 1e-9 (``tests/test_quality.py``,
slow set, on ML-100K and synthetic lists). :func:`bootstrap_interval`
gives a 95 % percentile bootstrap interval of a mean over users (users resampled, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(predicted, truth) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"{p.size} predictions for {t.size} true ratings")
    if p.size == 0:
        raise ValueError("no ratings to compare: the error is undefined")
    if not np.isfinite(p).all():
        at = int(np.flatnonzero(~np.isfinite(p))[0])
        raise ValueError(f"prediction {at} is {p[at]}; replace it by a fallback first")
    return p, t


def rmse(predicted, truth) -> float:
    """Root mean squared error."""
    p, t = _pair(predicted, truth)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(predicted, truth) -> float:
    """Mean absolute error."""
    p, t = _pair(predicted, truth)
    return float(np.mean(np.abs(p - t)))


def topn_per_user(recommended, relevant: Sequence, k: int, n_items: int) -> dict:
    """Per evaluated user (at least one relevant item): ``precision``, ``recall`` and ``ndcg``
    arrays at k; ``coverage``; ``hits`` (relevant items found, all users). The arguments are
    those of :func:`topn_metrics`."""
    rec = np.asarray(recommended)
    if rec.ndim != 2 or rec.shape[0] != len(relevant):
        raise ValueError(f"recommended has shape {rec.shape}; expected ({len(relevant)}, >= k)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= rec.shape[1]:
        raise ValueError(f"k must be an integer in [1, {rec.shape[1]}], got {k!r}")
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    rec = rec[:, :k]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    prec, recall, ndcg = [], [], []
    hits_total = 0
    for row, rel in zip(rec, relevant, strict=True):
        rel = np.unique(np.asarray(list(rel), dtype=np.int64))
        if rel.size == 0:
            continue
        hit = np.isin(row, rel) & (row >= 0)
        hits = int(hit.sum())
        hits_total += hits
        prec.append(hits / k)
        recall.append(hits / rel.size)
        ndcg.append(float(discount[hit].sum() / discount[: min(rel.size, k)].sum()))
    shown = np.unique(rec[rec >= 0])
    return {"precision": np.array(prec), "recall": np.array(recall), "ndcg": np.array(ndcg),
            "coverage": shown.size / n_items, "hits": hits_total}


def topn_metrics(recommended, relevant: Sequence, k: int, n_items: int) -> dict:
    """precision@k, recall@k, nDCG@k (means over users with a relevant item), coverage.

    Parameters
    ----------
    recommended : int array (n_users, >= k); only the first k columns are used
    relevant : sequence of n_users collections of item indices
    k : cut-off
    n_items : catalogue size, for coverage

    Returns
    -------
    dict with ``precision``, ``recall``, ``ndcg``, ``coverage``, ``users`` (evaluated) and
    ``hits`` (relevant items found, all users).
    """
    return _summary(topn_per_user(recommended, relevant, k, n_items))


def topn_metrics_with_ci(recommended, relevant: Sequence, k: int, n_items: int, *,
                         seed: int = 0) -> dict:
    """:func:`topn_metrics` plus ``<metric>_ci``: the 95 % :func:`bootstrap_interval` of
    each mean over users (seeded)."""
    per = topn_per_user(recommended, relevant, k, n_items)
    out = _summary(per)
    for m in MEAN_METRICS:
        out[f"{m}_ci"] = list(bootstrap_interval(per[m], seed=seed))
    return out


def _summary(per: dict) -> dict:
    users = per["ndcg"].size
    out = {m: float(per[m].mean()) if users else float("nan") for m in MEAN_METRICS}
    out.update(coverage=per["coverage"], users=users, hits=per["hits"])
    return out


MEAN_METRICS = ("precision", "recall", "ndcg")
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(values, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (per-user metric values),
    resampling users with replacement, seeded."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for b0 in range(0, resamples, 250):  # bounded memory: 250 resamples at a time
        b1 = min(resamples, b0 + 250)
        means[b0:b1] = v[rng.integers(0, v.size, size=(b1 - b0, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
