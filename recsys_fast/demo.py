"""Run the four naive course recommenders on one data set and print results with timings."""

from __future__ import annotations

import time
from contextlib import contextmanager

VALID = ("simple", "cf", "content", "dnn")


@contextmanager
def _timed(label: str):
    t0 = time.perf_counter()
    yield
    print(f"  [{label}: {time.perf_counter() - t0:.2f} s]")


def run(dataset: str = "synthetic-100k", *, path: str | None = None, which: str = "simple,cf,content,dnn", n: int = 5) -> int:
    """Load ``dataset`` and run the chosen naive recommenders. Returns an exit status."""
    from recsys_fast.cli import load_dataset

    chosen = [w.strip() for w in which.split(",") if w.strip()]
    bad = [w for w in chosen if w not in VALID]
    if bad:
        raise ValueError(f"unknown recommender(s) {bad}; valid: {', '.join(VALID)}")
    with _timed("load"):
        inter = load_dataset(dataset, path)
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
        print(f"user {user0}: user-based top-{n} unrated item ids {top.tolist()}")
        print(f"matrices: data {data.shape}, user sim {user_sim.shape}, item sim {item_sim.shape}, "
              f"item-based predictions {item_pred.shape}")

    if "content" in chosen:
        print("\n== content-based (TF-IDF 1-3 grams, linear_kernel, iterrows + argsort) ==")
        docs = inter.items.reset_index()[["item_id", "text"]]
        docs = docs[docs["text"].str.len() > 0]
        if docs.empty:
            print("  skipped: this data set has no item descriptions")
        else:
            from recsys_fast.naive.content import ContentRecommender

            docs = docs.rename(columns={"item_id": "id", "text": "description"}).head(2000)
            with _timed(f"content ({len(docs)} items)"):
                rec = ContentRecommender(docs).fit()
            first = int(docs["id"].iloc[0])
            for other, score in rec.recommend(first, n):
                print(f"  item {first} -> {other}  ({score:.3f})")

    if "dnn" in chosen:
        from recsys_fast.naive import youtube_dnn

        print("\n== YouTube candidate-generation DNN (Keras, padded numpy, steps_per_epoch=1) ==")
        with _timed("dnn (20 epochs)"):
            feats = youtube_dnn.build_features(inter)
            model, history = youtube_dnn.fit_naive(feats, epochs=20, seed=0)
        losses = history.history["loss"]
        print(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} epochs")
    return 0
