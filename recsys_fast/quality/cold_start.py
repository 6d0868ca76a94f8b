"""Cold start: the course's hybrids against CF, item-kNN, content and popularity alone.

Cold users (:func:`evaluate_cold_users`): for each ``keep`` in :data:`KEEPS`,
:func:`~recsys_fast.quality.splits.cold_user_split` (20 % of the users, seed 0) leaves each
cold user only their ``keep`` earliest ratings in train; their other ratings are held out.
Cold items (:func:`evaluate_cold_items`): the project's seeded random 80/20 split of the
ratings (:func:`~recsys_fast.quality.splits.random_split`, seed 0); a user's relevant items are
their held-out items with 1 to :data:`COLD_ITEM_MAX` training ratings.

Models, all fitted on train only and ranking every train item the user has not rated:

* ``switching-hybrid``: :class:`~recsys_fast.kernels.hybrid.SwitchingHybrid`,
  ``min_ratings=5`` (CF only where user and item both have 5 training ratings, else the
  content estimate where defined, else the item's weighted rating);
* ``mixed-hybrid``: :class:`~recsys_fast.kernels.hybrid.MixedHybrid` (CF and content lists
  taken in turn);
* ``cf-alone``: the hybrids' CF, :class:`~recsys_fast.kernels.predict.FixedCF` item-based,
  k=50, its ``recommend`` (top predicted ratings);
* ``item-knn``: :class:`~recsys_fast.models.ItemKNNModel` (cosine, K=50), a ranker;
* ``content-alone``: the hybrids' content estimate only (items where it is undefined are never
  listed; popularity never used; equal estimates by ascending item index);
* ``most-popular``: :class:`~recsys_fast.models.MostPopular`.

Content: each item's text is its title, its genres as single tokens (``Sci-Fi`` ->
``genre_scifi``) and, where a ``tags.csv`` is given (ml-latest-small), its tags, except those
whose (user, item) pair is a held-out rating (a tag says its author saw the film). The item x
item similarity is the TF-IDF cosine of the train items' texts, each item's
:data:`CONTENT_NEIGHBOURS` best (:func:`~recsys_fast.kernels.tfidf.tfidf_topk`, the course's
vectoriser settings). Metrics at :data:`TOP_N`: precision, recall, nDCG with 95 % bootstrap
intervals over the users (:mod:`~recsys_fast.quality.metrics`, 2,000 seeded resamples). A
held-out item that is not a train item cannot be recommended: it is left out of the relevant
set and counted (``test_items_unknown``); users left with no relevant item are counted, not
evaluated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse

from recsys_fast.kernels.core import check_top_n
from recsys_fast.kernels.hybrid import SOURCES, MixedHybrid, SwitchingHybrid
from recsys_fast.kernels.predict import FixedCF
from recsys_fast.kernels.tfidf import tfidf_topk
from recsys_fast.models import ItemKNNModel, MostPopular
from recsys_fast.quality import metrics, splits
from recsys_fast.quality.report import with_ci

MODELS = ("switching-hybrid", "mixed-hybrid", "cf-alone", "item-knn", "content-alone",
          "most-popular")
KEEPS = (1, 3, 5)
TOP_N = 10
CONTENT_NEIGHBOURS = 50
MIN_RATINGS = 5
COLD_ITEM_MAX = 5
TEST_FRACTION = 0.2
SEED = 0


# -- content ----------------------------------------------------------------------------------
def genre_tokens(genres: str) -> str:
    """``"Sci-Fi|Children's"`` -> ``"genre_scifi genre_childrens"`` (one token per genre)."""
    names = [g for g in str(genres).split("|") if g.strip()]
    return " ".join("genre_" + re.sub(r"\W", "", g).lower() for g in names)


def read_tags(folder: str | Path) -> pd.DataFrame | None:
    """``user_id``, ``item_id``, ``tag`` from a MovieLens ``tags.csv`` in ``folder``, or None
    when there is none."""
    path = Path(folder) / "tags.csv"
    if not path.is_file():
        return None
    raw = pd.read_csv(path, dtype={"tag": str}, keep_default_na=False)
    lack = [c for c in ("userId", "movieId", "tag") if c not in raw.columns]
    if lack:
        raise ValueError(f"{path} lacks columns {lack} (has {list(raw.columns)})")
    return raw.rename(columns={"userId": "user_id", "movieId": "item_id"})[
        ["user_id", "item_id", "tag"]]


def usable_tags(tags: pd.DataFrame | None, test: pd.DataFrame) -> pd.DataFrame | None:
    """``tags`` less those whose (user, item) pair is a held-out rating in ``test``."""
    if tags is None:
        return None
    held = pd.MultiIndex.from_frame(test[["user_id", "item_id"]])
    pairs = pd.MultiIndex.from_frame(tags[["user_id", "item_id"]])
    return tags[~pairs.isin(held)]


def content_text(items: pd.DataFrame, tags: pd.DataFrame | None = None) -> pd.Series:
    """Each item's text, indexed by item id: title, genre tokens and (if given) its tags."""
    for col in ("title", "genres"):
        if col not in items.columns:
            raise ValueError(f"items lack column {col!r} (has {list(items.columns)})")
    text = (items["title"].fillna("").astype(str) + " "
            + items["genres"].fillna("").map(genre_tokens))
    if tags is not None and len(tags):
        joined = tags.groupby("item_id")["tag"].agg(lambda t: " ".join(map(str, t)))
        text = text + " " + joined.reindex(items.index).fillna("")
    return text.str.strip()


def content_similarity(text: pd.Series, item_ids, k: int = CONTENT_NEIGHBOURS
                       ) -> scipy.sparse.csr_matrix:
    """TF-IDF cosine of the texts of ``item_ids`` (rows/columns in that order), each item's
    ``k`` best other items (positive scores only); an id without text gets an empty row.

    The top-k runs the ``sparse`` strategy, not ``auto``: ``auto`` picks sparse or dense by a
    timed trial, and the two round the similarities differently in the last bits, which
    reorders the content estimates' many near-ties from one run to the next."""
    item_ids = np.asarray(item_ids)
    docs = text.reindex(item_ids).fillna("")
    neighbours = tfidf_topk(docs, k=min(k, item_ids.size - 1) + 1, strategy="sparse")
    return neighbours.similarity_matrix(item_ids)


# -- ranking ----------------------------------------------------------------------------------
def _top_block(S: np.ndarray, n: int) -> np.ndarray:
    """Per row the n highest-scoring columns (-inf: not a candidate), best first, equal scores
    by ascending column; -1 where a row has fewer than n candidates."""
    order = np.argsort(-S, axis=1, kind="stable")[:, :n]
    items = order.astype(np.int64)
    items[np.isneginf(np.take_along_axis(S, order, axis=1))] = -1
    return items


def content_ranking(hybrid: SwitchingHybrid, users: np.ndarray, n: int
                    ) -> tuple[np.ndarray, dict[str, int]]:
    """Top-n unrated items of each user by the hybrid's content estimate alone, and tie
    counts: ``all_tied`` (users whose n listed estimates are all equal) and ``cut_tied``
    (users whose n-th and next candidate are equal, so item order decides the cut)."""
    R = hybrid.train_
    S = np.empty((users.size, R.shape[1]))
    for r, u in enumerate(users):
        est, ok = hybrid.content_scores(int(u))
        row = np.where(ok, est, -np.inf)
        row[R.indices[R.indptr[u]:R.indptr[u + 1]]] = -np.inf
        S[r] = row
    items = _top_block(S, n)
    best = -np.sort(-S, axis=1)[:, : n + 1]
    finite = np.isfinite(best)
    all_tied = finite[:, n - 1] & (best[:, 0] == best[:, n - 1])
    if best.shape[1] > n:
        cut_tied = finite[:, n] & (best[:, n - 1] == best[:, n])
    else:
        cut_tied = np.zeros(users.size, dtype=bool)
    return items, {"all_tied": int(all_tied.sum()), "cut_tied": int(cut_tied.sum())}


def rank_all(train: scipy.sparse.csr_matrix, content: scipy.sparse.csr_matrix,
             users: np.ndarray, n: int = TOP_N, log: Callable[[str], None] | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """Each model's top-n lists for ``users`` (rows of ``train``), and per hybrid the sources
    of the listed slots and ``all_tied`` (users whose n listed scores are all equal; for
    ``content-alone`` also ``cut_tied``, see :func:`content_ranking`)."""
    users = np.asarray(users, dtype=np.int64)
    n = check_top_n(n, train.shape[1])
    out: dict[str, np.ndarray] = {}
    sources: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    cf = FixedCF("item", k=50, dtype=np.float64).fit(train)
    switching = SwitchingHybrid(cf, content=content, min_ratings=MIN_RATINGS).fit(train)
    mixed = MixedHybrid(cf, content=content).fit(train)
    seconds["fit"] = time.perf_counter() - t0
    for name, hybrid in (("switching-hybrid", switching), ("mixed-hybrid", mixed)):
        t0 = time.perf_counter()
        lists = [hybrid.recommend(int(u), n) for u in users]
        out[name] = np.array([r.items for r in lists], dtype=np.int64).reshape(users.size, n)
        tally = dict.fromkeys(SOURCES, 0)
        for r in lists:
            for src in r.sources:
                if src:
                    tally[src] += 1
        tally["all_tied"] = sum(int(np.isfinite(r.scores).all() and np.ptp(r.scores) == 0)
                                for r in lists)
        sources[name] = tally
        seconds[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["cf-alone"] = np.asarray(cf.recommend(users, n)[0], dtype=np.int64)
    seconds["cf-alone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["item-knn"] = ItemKNNModel(50, "cosine").fit(train).recommend(users, n).items
    seconds["item-knn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["content-alone"], sources["content-alone"] = content_ranking(switching, users, n)
    seconds["content-alone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["most-popular"] = MostPopular().fit(train).recommend(users, n).items
    seconds["most-popular"] = time.perf_counter() - t0
    if log is not None:
        log("    seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return {m: out[m] for m in MODELS}, sources


def score(rankings: dict[str, np.ndarray], relevant: list[np.ndarray], n_items: int,
          n: int = TOP_N) -> list[dict]:
    """precision/recall/nDCG@n with bootstrap intervals and coverage, one dict per model."""
    return [{"model": model,
             **metrics.topn_metrics_with_ci(items, relevant, n, n_items, seed=SEED)}
            for model, items in rankings.items()]


def _relevant(enc: splits.Encoded, keep_item) -> tuple[np.ndarray, list[np.ndarray]]:
    """Users (train rows) with at least one relevant held-out item, and those items."""
    ok = (enc.test_users >= 0) & (enc.test_items >= 0)
    ok &= keep_item(np.where(enc.test_items >= 0, enc.test_items, 0))
    frame = pd.DataFrame({"u": enc.test_users[ok], "i": enc.test_items[ok]})
    groups = frame.groupby("u")["i"].apply(np.unique)
    return groups.index.to_numpy(np.int64), list(groups.to_numpy())


def _run_split(train_frame, test_frame, items, tags, keep_item, n, log) -> dict:
    enc = splits.encode(train_frame, test_frame)
    R = enc.train.astype(np.float64)
    tags = usable_tags(tags, test_frame)
    text = content_text(items, tags)
    content = content_similarity(text, enc.item_ids)
    users, relevant = _relevant(enc, keep_item(R))
    if users.size == 0:
        raise ValueError("no held-out user has a relevant train item: nothing to evaluate")
    rankings, sources = rank_all(R, content, users, n, log)
    facts = {
        "train_ratings": int(R.nnz), "test_ratings": len(test_frame),
        "test_users": int(test_frame["user_id"].nunique()),
        "evaluated_users": int(users.size),
        "relevant_items": int(sum(r.size for r in relevant)),
        "test_items_unknown": int((enc.test_items < 0).sum()),
        "users_without_relevant": int(test_frame["user_id"].nunique() - users.size),
        "content_nnz": int(content.nnz),
        "items_with_content_neighbours": int((np.diff(content.indptr) > 0).sum()),
        "tags_used": 0 if tags is None else len(tags),
        "hybrid_lists": sources,
    }
    return {"facts": facts, "rows": score(rankings, relevant, R.shape[1], n)}


def evaluate_cold_users(ratings: pd.DataFrame, items: pd.DataFrame, *,
                        tags: pd.DataFrame | None = None, keeps=KEEPS,
                        test_fraction: float = TEST_FRACTION, seed: int = SEED, n: int = TOP_N,
                        log: Callable[[str], None] | None = None) -> list[dict]:
    """One result per ``keep``: ``{"table": "cold-users", "keep", "facts", "rows"}``."""
    out = []
    for keep in keeps:
        train, test = splits.cold_user_split(ratings, keep, test_fraction, seed)
        if log is not None:
            log(f"  cold users, keep={keep}: {test['user_id'].nunique()} cold users, "
                f"{len(test)} held-out ratings")
        res = _run_split(train, test, items, tags, lambda R: (lambda i: np.ones(i.size, bool)),
                         n, log)
        res["facts"]["cold_users"] = int(test["user_id"].nunique())
        out.append({"table": "cold-users", "keep": keep, **res})
    return out


def evaluate_cold_items(ratings: pd.DataFrame, items: pd.DataFrame, *,
                        tags: pd.DataFrame | None = None, max_ratings: int = COLD_ITEM_MAX,
                        test_fraction: float = TEST_FRACTION, seed: int = SEED, n: int = TOP_N,
                        log: Callable[[str], None] | None = None) -> dict:
    """``{"table": "cold-items", "max_ratings", "facts", "rows"}``: relevant items are the
    held-out items with 1 to ``max_ratings`` training ratings."""
    train, test = splits.random_split(ratings, test_fraction, seed)

    def cold(R):
        counts = np.bincount(R.indices, minlength=R.shape[1])
        return lambda i: counts[i] <= max_ratings

    if log is not None:
        log(f"  cold items (<= {max_ratings} train ratings), random split: "
            f"{len(test)} held-out ratings")
    res = _run_split(train, test, items, tags, cold, n, log)
    return {"table": "cold-items", "max_ratings": max_ratings, **res}


def markdown_table(result: dict) -> str:
    """A result's rows as a markdown table: value and [95 % interval] per metric."""
    head = f"| model | recall@{TOP_N} | nDCG@{TOP_N} | precision@{TOP_N} | users |"
    lines = [head, "|---|---|---|---|---|"]
    for r in result["rows"]:
        cells = [with_ci(r, m) for m in ("recall", "ndcg", "precision")]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['users']} |")
    return "\n".join(lines)
