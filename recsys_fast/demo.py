"""Run the four naive course recommenders on one data set and print results with timings.

Recommendations are printed as titles. TensorFlow's start-up log lines are kept out of the
output: ``TF_CPP_MIN_LOG_LEVEL`` defaults to ``3`` before TensorFlow is imported (a value
already set is kept), absl's Python logging is set to errors only, and, since TensorFlow 2.20
and later write some lines before their log level is read, the DNN step's stderr is passed
through a filter that drops C++ log lines (``I0000 00:00:...  port.cc:153] ...``); anything
else written there is shown.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager

VALID = ("simple", "cf", "content", "dnn")
_TF_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    r"|To enable the following instructions:)"
)


@contextmanager
def tensorflow_log_filtered():
    """Run the body with file descriptor 2 captured; on exit write back to stderr what it
    got, less TensorFlow's C++ log lines (:data:`_TF_LOG_LINE`)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not _TF_LOG_LINE.match(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and absl start-up logging; call before importing TensorFlow
    or Keras (a ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _title(items, item_id) -> str:
    """The title of ``item_id`` from an items frame (its id when the frame has no title)."""
    try:
        title = str(items.at[item_id, "title"])
    except KeyError:
        return f"item {item_id}"
    return title or f"item {item_id}"


def _knn_section(inter, data, user0: int, n: int) -> None:
    """The item-kNN ranker (implicit's function, the best kNN ranker of the quality tables)
    for the same user, each item with the rated items that scored it most."""
    import scipy.sparse

    from recsys_fast.kernels import ItemKNN
    from recsys_fast.kernels.knn_rank import explain

    print("\nitem-kNN ranker (optimised ItemKNN: cosine, K=50; score = your ratings x item "
          "similarity, rated items out)")
    with _timed("item-kNN fit + recommend"):
        R = scipy.sparse.csr_matrix(data)
        model = ItemKNN(50, "cosine").fit(R)
        items, scores = model.recommend([user0 - 1], min(n, R.shape[1]))
    print(f"user {user0}: top-{items.shape[1]} and why")
    for item, score in zip(items[0].tolist(), scores[0].tolist(), strict=True):
        if item < 0:
            continue
        why = ", ".join(f"{_title(inter.items, j + 1)} ({R[user0 - 1, j]:g})"
                        for j, _ in explain(model, user0 - 1, item))
        print(f"  {_title(inter.items, item + 1)}  (score {score:.2f}; you rated {why})")


@contextmanager
def _timed(label: str):
    t0 = time.perf_counter()
    yield
    print(f"  [{label}: {time.perf_counter() - t0:.2f} s]")


def run(
    dataset: str = "synthetic-100k",
    *,
    path: str | None = None,
    which: str = "simple,cf,content,dnn",
    n: int = 5,
    epochs: int = 20,
) -> int:
    """Load ``dataset`` and run the chosen naive recommenders.

    Parameters
    ----------
    dataset : ``synthetic-<scale>`` or a catalogue name.
    path : folder of the real data set (catalogue names only).
    which : comma list of ``simple``, ``cf``, ``content``, ``dnn``.
    n : items shown per recommender (at least 1).
    epochs : training epochs of the DNN (at least 1).

    Returns
    -------
    int
        The exit status (0).
    """
    from recsys_fast.data.catalogue import load_named

    chosen = [w.strip() for w in which.split(",") if w.strip()]
    bad = [w for w in chosen if w not in VALID]
    if bad or not chosen:
        raise ValueError(f"unknown recommender(s) {bad or which!r}; valid: {', '.join(VALID)}")
    for label, value in (("-n", n), ("--epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    with _timed("load"):
        inter = load_named(dataset, path)
    print(f"{inter.name}: {inter.n_users:,} users, {inter.n_items:,} items, {inter.n_ratings:,} ratings")

    if "simple" in chosen:
        from recsys_fast.naive import simple

        print("\n== simple recommender (IMDB weighted rating, pandas.apply) ==")
        with _timed("simple"):
            stats = simple.vote_stats_from_ratings(inter.ratings, inter.items)
            chart = simple.weighted_rating_chart(stats, top=n)
        print(chart[["title", "vote_count", "vote_average", "score"]].to_string())

    if "cf" in chosen:
        from recsys_fast.naive import collaborative as cf

        print("\n== memory-based CF (dense matrix, pairwise_distances, predict) ==")
        with _timed("cf"):
            data = cf.build_data_matrix(inter.ratings)
            user_sim, item_sim = cf.user_item_similarity(data)
            user_pred = cf.predict(data, user_sim, type="user")
            item_pred = cf.predict(data, item_sim, type="item")
        user0 = int(inter.ratings["user_id"].min())
        row = user_pred[user0 - 1].copy()
        row[data[user0 - 1] > 0] = -float("inf")  # hide already-rated items
        top = row.argsort()[::-1][:n] + 1
        print(f"user {user0}: user-based top-{n} unrated items")
        for item_id in top.tolist():
            print(f"  {_title(inter.items, item_id)}")
        print(f"matrices: data {data.shape}, user sim {user_sim.shape}, item sim {item_sim.shape}, "
              f"item-based predictions {item_pred.shape}")
        _knn_section(inter, data, user0, n)

    if "content" in chosen:
        print("\n== content-based (TF-IDF 1-3 grams, linear_kernel, iterrows + argsort) ==")
        items = inter.items.reset_index()
        docs = items[["item_id", "text"]]
        docs = docs[docs["text"].str.len() > 0]
        if docs.empty:  # no descriptions (MovieLens): describe each item by title and genres
            print("  (no item descriptions in this data set: titles and genres used instead)")
            text = items["title"].astype(str) + " " + items["genres"].astype(str).str.replace("|", " ")
            docs = items[["item_id"]].assign(text=text)
        from recsys_fast.naive.content import ContentRecommender

        docs = docs.rename(columns={"item_id": "id", "text": "description"}).head(2000)
        with _timed(f"content ({len(docs)} items)"):
            rec = ContentRecommender(docs).fit()
        first = int(docs["id"].iloc[0])
        print(f"items like {_title(inter.items, first)}:")
        for other, score in rec.recommend(first, n):
            print(f"  {_title(inter.items, other)}  ({score:.3f})")

    if "dnn" in chosen:
        print("\n== YouTube candidate-generation DNN (Keras, padded numpy, steps_per_epoch=1) ==")
        quiet_tensorflow()
        with tensorflow_log_filtered():
            from recsys_fast.naive import youtube_dnn

            with _timed(f"dnn ({epochs} epochs)"):
                feats = youtube_dnn.build_features(inter)
                model, history = youtube_dnn.fit_naive(feats, epochs=epochs, seed=0)
            k = min(n, feats.n_items)
            top = youtube_dnn.recommend(model, feats, k)[0]
        losses = history["loss"]
        print(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} epochs")
        print(f"user {int(feats.user_ids[0])}: top-{k} candidates")
        for item_id in top.tolist():
            print(f"  {_title(inter.items, item_id)}")
    return 0
