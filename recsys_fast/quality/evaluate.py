"""The quality protocol: the same splits, fallback and metrics for every model.

Rating prediction (every :class:`~recsys_fast.models.RatingPredictor`), RMSE and MAE:

* ``ml-100k``: its own splits ``ua``, ``ub`` and the 5 folds ``u1``..``u5`` (their mean is
  reported as ``u1-u5``, the mean of the per-fold figures, as Surprise's ``cross_validate``);
* ``ml-latest-small``: one seeded random 80/20 split of ``ratings.csv`` (seed 0,
  :func:`~recsys_fast.quality.splits.random_split`).

Top-N (every :class:`~recsys_fast.models.Recommender`, and the course CF, which ranks its
predictions), on ``ml-100k``, ``ml-latest-small``, ``movies-ratings-small`` (The Movies
Dataset's ``ratings_small.csv``) and ``synthetic-1m`` (the ML-1M-shaped synthetic preset, seed
0), two splits (:mod:`~recsys_fast.quality.splits`, where their tie rules are stated):

* ``leave-last-out``: each user's latest rating, equal timestamps broken by a seeded shuffle;
* ``temporal-80-20``: one global cut at the 80th percentile of the timestamps.

Each evaluated user gets 10 items not rated in train; precision@10, recall@10, nDCG@10, each
with a 95 % bootstrap interval over the users (2,000 seeded resamples), and catalogue coverage
over the train items (:mod:`~recsys_fast.quality.metrics`). A held-out item that no one rated
in train cannot be recommended: it stays in the relevant set (a miss for every model) and is
counted (``test_items_unknown``). Rating predictors that predict pair by pair in Python
(Surprise) are not ranked over whole catalogues: their top-N rows are ``skipped`` with that
reason. The baselines ``most-popular`` and ``random-seed0`` are ranked like every model.

A tunable model (``knn-tuned``) picks its configuration by nDCG@10 on a validation split
made from train alone by the same split function (:func:`tune`); the test split is never seen
before the final fit. The row records the choice (``tuned``) and its validation nDCG@10.

Models see only train's users and items (:func:`~recsys_fast.quality.splits.encode`). A test
pair whose user or item has no train rating is predicted by the **fallback, the global mean of
the train ratings**, for every model alike; a non-finite model prediction (the course's
division by a zero weight sum) gets the same fallback. Both counts are recorded per row
(``fallback_unknown``, ``fallback_nonfinite``), as is the model's own internal fallback count
where the library reports one (``model_fallbacks``: Surprise's "impossible" predictions).
Predictions are not clipped to the rating scale.

A model whose optional package is missing, or whose memory estimate exceeds the budget, is
recorded ``skipped`` with the reason; any other exception is an ``error`` row (the run goes on
and exits non-zero).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recsys_fast.errors import MemoryBudgetError
from recsys_fast.models import CourseCF, Model, RatingPredictor, Recommender
from recsys_fast.quality import metrics, splits

DATASETS = ("ml-100k", "ml-latest-small", "movies-ratings-small", "synthetic-1m")
TOPN_SPLITS = {"leave-last-out": lambda r: splits.leave_last_out(r, seed=SEED),
               "temporal-80-20": lambda r: splits.temporal_split(r, 0.2)}
RATING_SPLITS = {"ml-100k": ("ua", "ub", "u1", "u2", "u3", "u4", "u5"),
                 "ml-latest-small": ("random-80-20-seed0",)}
FOLDS = ("u1", "u2", "u3", "u4", "u5")
TOP_N = 10
SEED = 0
RATING_ONLY = ("rating predictor only: ranking a whole catalogue pair by pair in Python is not "
               "part of the protocol")


def data_folder(name: str) -> str:
    """The folder a catalogued data set lives in under a data root (``movies-ratings-small``:
    ``movies-dataset``)."""
    from recsys_fast.data.specs import get_spec

    return get_spec(name).folder


def dataset_path(name: str, path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$RECSYS_FAST_SHARED/<name>`` when it exists, else the data cache."""
    if path is not None:
        return Path(path)
    from recsys_fast.data.catalogue import resolve_path

    shared = os.environ.get("RECSYS_FAST_SHARED")
    folder = data_folder(name)
    if shared and (Path(shared) / folder).is_dir():
        return Path(shared) / folder

    return resolve_path(name)


def _all_ratings(name: str, path: Path | None):
    if name == "synthetic-1m":
        from recsys_fast.data.synthetic import generate

        return generate("1m", seed=SEED).ratings
    from recsys_fast.data.catalogue import load

    return load(name, path=path).ratings


def rating_splits(name: str, path: Path | None):
    """``(split name, train frame, test frame)`` of the rating-prediction protocol."""
    if name == "ml-100k":
        from recsys_fast.data.loaders import load_ml100k_split

        for split in RATING_SPLITS[name]:
            train, test = load_ml100k_split(path, split)
            yield split, train.ratings, test.ratings
    elif name == "ml-latest-small":
        train, test = splits.random_split(_all_ratings(name, path), 0.2, seed=SEED)
        yield RATING_SPLITS[name][0], train, test


def _checked_path(name: str, paths: dict) -> Path:
    """The folder of ``name`` (see :func:`dataset_path`), checked to hold its files."""
    from recsys_fast.data.catalogue import check_files, resolve_path
    from recsys_fast.data.specs import get_spec

    where = resolve_path(name, dataset_path(name, paths.get(name)))
    check_files(get_spec(name), where)
    return where


def _skip_reason(model: Model) -> str | None:
    return model.skip_reason()


def _run(row: dict, work: Callable[[], dict]) -> dict:
    """``row`` completed by ``work()``: ok, skipped (declared cannot-run) or error."""
    try:
        row.update(work())
        row["status"] = "ok"
    except MemoryBudgetError as exc:
        row.update(status="skipped", reason=str(exc))
    except Exception as exc:  # a broken model is recorded and the run goes on
        row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    return row


def _fallback(pred: np.ndarray, known: np.ndarray, global_mean: float) -> tuple[np.ndarray, int]:
    out = np.full(known.size, global_mean)
    out[known] = pred
    bad = ~np.isfinite(out)
    out[bad] = global_mean
    return out, int(bad.sum())


def eval_rating(model: RatingPredictor, enc: splits.Encoded) -> dict:
    """RMSE/MAE of ``model`` fit on ``enc.train`` over all test pairs (fallbacks counted)."""
    t0 = time.perf_counter()
    model.fit(enc.train)
    t1 = time.perf_counter()
    known = enc.known
    pred = model.predict(enc.test_users[known], enc.test_items[known])
    t2 = time.perf_counter()
    gmean = float(enc.train.data.astype(np.float64).mean())
    full, nonfinite = _fallback(np.asarray(pred, dtype=np.float64), known, gmean)
    out = {"rmse": metrics.rmse(full, enc.test_ratings), "mae": metrics.mae(full, enc.test_ratings),
           "n_test": int(known.size), "fallback_unknown": int((~known).sum()),
           "fallback_nonfinite": nonfinite, "fit_s": t1 - t0, "predict_s": t2 - t1}
    if getattr(model, "fallbacks_", None) is not None:
        out["model_fallbacks"] = int(model.fallbacks_)
    return out


def ranks(model: Model) -> bool:
    """Whether the top-N protocol evaluates ``model`` (see the module docstring)."""
    return isinstance(model, (Recommender, CourseCF))


def eval_topn(model: Model, enc: splits.Encoded, n: int = TOP_N) -> dict:
    """precision/recall/nDCG@n (with bootstrap intervals) and coverage of ``model`` on a
    top-N split."""
    users = np.unique(enc.test_users[enc.test_users >= 0])
    if users.size == 0:
        raise ValueError("no test user is known in train: nothing to rank")
    t0 = time.perf_counter()
    model.fit(enc.train)
    t1 = time.perf_counter()
    top = model.recommend(users, n)
    t2 = time.perf_counter()
    if top.items.shape != (users.size, n):
        raise ValueError(f"{model.name}.recommend returned shape {top.items.shape}, "
                         f"expected {(users.size, n)}")
    relevant: dict[int, list[int]] = {int(u): [] for u in users}
    for u, i in zip(enc.test_users.tolist(), enc.test_items.tolist(), strict=True):
        if u >= 0 and i >= 0:
            relevant[u].append(i)
    # an item unknown in train is still relevant: a miss that no model can avoid
    lists = [relevant[int(u)] or [-2] for u in users]
    m = metrics.topn_metrics_with_ci(top.items, lists, n, enc.train.shape[1], seed=SEED)
    m.update(test_users_unknown=int((enc.test_users < 0).sum()),
             test_items_unknown=int(((enc.test_users >= 0) & (enc.test_items < 0)).sum()),
             fit_s=t1 - t0, recommend_s=t2 - t1)
    return m


def tune(model: Model, train_frame, split_fn, n: int = TOP_N) -> dict:
    """Set a tunable model to the configuration of its ``GRID`` with the best nDCG@n on a
    validation split of ``train_frame`` made by ``split_fn`` (ties: the earlier in the grid);
    returns ``{"tuned": params, "validation_ndcg": value, "tune_s": seconds}``."""
    t0 = time.perf_counter()
    enc = splits.encode(*split_fn(train_frame))
    best, best_ndcg = None, -1.0
    for cfg in model.GRID:
        ndcg = eval_topn(model.set_params(**cfg), enc, n)["ndcg"]
        if ndcg > best_ndcg:
            best, best_ndcg = cfg, ndcg
    model.set_params(**best)
    return {"tuned": dict(best), "validation_ndcg": best_ndcg, "tune_s": time.perf_counter() - t0}


def _topn_row(model: Model, train_frame, split_fn, enc: splits.Encoded) -> dict:
    out = tune(model, train_frame, split_fn) if getattr(model, "tunable", False) else {}
    out.update(eval_topn(model, enc))
    out["note"] = model.note
    return out


def _base_row(task: str, dataset: str, split: str, model: Model) -> dict:
    return {"task": task, "dataset": dataset, "split": split, "model": model.name,
            "note": model.note, "version": model.version()}


def _say(log, row: dict) -> None:
    if log is None:
        return
    head = f"[{row['dataset']} {row['split']}] {row['model']}:"
    if row["status"] != "ok":
        log(f"{head} {row['status']}: {row.get('reason', '')}")
    elif row["task"] == "rating":
        log(f"{head} RMSE {row['rmse']:.4f}  MAE {row['mae']:.4f}  (fit {row['fit_s']:.1f} s, "
            f"predict {row['predict_s']:.1f} s, fallbacks {row['fallback_unknown']}"
            f"+{row['fallback_nonfinite']})")
    else:
        lo, hi = row["ndcg_ci"]
        tuned = f", tuned {row['tuned']}" if "tuned" in row else ""
        log(f"{head} P@10 {row['precision']:.4f}  R@10 {row['recall']:.4f}  "
            f"nDCG@10 {row['ndcg']:.4f} [{lo:.4f}, {hi:.4f}]  cov {row['coverage']:.3f}  "
            f"(fit {row['fit_s']:.1f} s, recommend {row['recommend_s']:.1f} s{tuned})")


def fold_means(rows: list[dict]) -> list[dict]:
    """One ``u1-u5`` row per (dataset, model): the mean of the five folds' RMSE and MAE
    (``status`` ok only when all five are)."""
    out = []
    folds = [r for r in rows if r["task"] == "rating" and r["split"] in FOLDS]
    for key in dict.fromkeys((r["dataset"], r["model"]) for r in folds):
        mine = [r for r in folds if (r["dataset"], r["model"]) == key]
        row = {k: mine[0][k] for k in ("task", "dataset", "model", "note", "version")}
        row["split"] = "u1-u5"
        if "data_verified" in mine[0]:
            row["data_verified"] = mine[0]["data_verified"]
        ok = [r for r in mine if r["status"] == "ok"]
        if len(ok) == len(FOLDS):
            row.update(status="ok", rmse=float(np.mean([r["rmse"] for r in ok])),
                       mae=float(np.mean([r["mae"] for r in ok])),
                       rmse_folds=[r["rmse"] for r in ok],
                       fallback_unknown=sum(r["fallback_unknown"] for r in ok),
                       fallback_nonfinite=sum(r["fallback_nonfinite"] for r in ok),
                       fit_s=sum(r["fit_s"] for r in ok), predict_s=sum(r["predict_s"] for r in ok))
        else:
            row.update(status=mine[0]["status"] if not ok else "error",
                       reason=next((r.get("reason") for r in mine if r["status"] != "ok"), ""))
        out.append(row)
    return out


def evaluate(datasets: list[str], make_models: Callable[[], list[Model]], *,
             paths: dict | None = None, log=None, topn: bool = True,
             rating: bool = True) -> list[dict]:
    """Run the protocol; one row per (task, dataset, split, model).

    ``make_models`` returns fresh models (called once per split, so no state leaks between
    splits). ``log``: a callable given one progress line per finished row, or None.
    """
    paths = paths or {}
    rows: list[dict] = []
    found = {}
    for name in datasets:  # every data set found before any work: a missing one costs nothing
        if name not in DATASETS:
            raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
        found[name] = None if name.startswith("synthetic-") else _checked_path(name, paths)
    for name in datasets:
        path = found[name]
        verified = name.startswith("synthetic-") or _verified(name, path)
        n_before = len(rows)
        if rating and name in RATING_SPLITS:
            for split, train, test in rating_splits(name, path):
                enc = splits.encode(train, test)
                for model in make_models():
                    if not isinstance(model, RatingPredictor):
                        continue
                    row = _base_row("rating", name, split, model)
                    reason = _skip_reason(model)
                    if reason:
                        row.update(status="skipped", reason=reason)
                    else:
                        row = _run(row, lambda m=model, e=enc: eval_rating(m, e))
                    rows.append(row)
                    _say(log, row)
        if topn:
            ratings = _all_ratings(name, path)
            for split, split_fn in TOPN_SPLITS.items():
                train, test = split_fn(ratings)
                enc = splits.encode(train, test)
                for model in make_models():
                    row = _base_row("topn", name, split, model)
                    reason = _skip_reason(model) or (None if ranks(model) else RATING_ONLY)
                    if reason:
                        row.update(status="skipped", reason=reason)
                    else:
                        row = _run(row, lambda m=model, t=train, f=split_fn, e=enc:
                                   _topn_row(m, t, f, e))
                    rows.append(row)
                    _say(log, row)
        for row in rows[n_before:]:
            row["data_verified"] = verified
    return rows + fold_means(rows)


def _verified(name: str, path: Path) -> bool:
    """Whether the files read for ``name`` are known to be its release (see
    :func:`recsys_fast.data.catalogue.content_verified`)."""
    from recsys_fast.data.catalogue import content_verified
    from recsys_fast.data.specs import get_spec

    return content_verified(get_spec(name), path)


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
