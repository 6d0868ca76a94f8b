"""The quality protocol: metrics on hand-checked cases, splits, fallbacks, results files, the
table, ``recsys-fast eval``, and the committed quality files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_fast import results_store as speed_results
from recsys_fast.errors import DataFormatError
from recsys_fast.models import FixedCFModel, RatingPredictor, Recommender, TopN
from recsys_fast.quality import evaluate as ev
from recsys_fast.quality import metrics, report, splits, store

ROOT = Path(__file__).resolve().parents[1] / "results"


# -- metrics ------------------------------------------------------------------------------
def test_rmse_and_mae_by_hand():
    # errors 1, -2, 0, 1: squares 1 4 0 1 -> mean 1.5; absolute 1 2 0 1 -> mean 1
    assert metrics.rmse([4, 1, 3, 5], [3, 3, 3, 4]) == pytest.approx(math.sqrt(1.5))
    assert metrics.mae([4, 1, 3, 5], [3, 3, 3, 4]) == pytest.approx(1.0)


def test_error_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="2 predictions for 3"):
        metrics.rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="undefined"):
        metrics.mae([], [])
    with pytest.raises(ValueError, match="prediction 1 is nan"):
        metrics.rmse([1, np.nan], [1, 2])


def test_topn_metrics_by_hand():
    rec = np.array([[5, 1, 9, -1],   # relevant {1, 9, 7}: hits at ranks 2 and 3
                    [2, 3, 4, 6],    # relevant {8}: no hit
                    [0, 1, 2, 3]])   # no relevant item: not evaluated
    rel = [[1, 9, 7], [8], []]
    m = metrics.topn_metrics(rec, rel, k=4, n_items=20)
    assert m["users"] == 2 and m["hits"] == 2
    assert m["precision"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["recall"] == pytest.approx((2 / 3 + 0) / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx((dcg / idcg + 0) / 2)
    # distinct items shown: 5 1 9 2 3 4 6 0 = 8 of 20 (padding -1 not counted)
    assert m["coverage"] == pytest.approx(8 / 20)


def test_topn_cutoff_uses_the_first_k_columns_only():
    m = metrics.topn_metrics(np.array([[3, 1]]), [[1]], k=1, n_items=4)
    assert m["precision"] == 0 and m["ndcg"] == 0 and m["coverage"] == 0.25
    m = metrics.topn_metrics(np.array([[1, 3]]), [[1]], k=1, n_items=4)
    assert m["precision"] == 1 and m["recall"] == 1 and m["ndcg"] == 1


def test_topn_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.topn_metrics(np.zeros((2, 3), int), [[1]], 3, 5)
    with pytest.raises(ValueError, match="k must be"):
        metrics.topn_metrics(np.zeros((1, 3), int), [[1]], 4, 5)


# -- splits -------------------------------------------------------------------------------
def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_leave_last_out_takes_each_users_latest_rating():
    r = frame([(1, 10, 4, 100), (1, 11, 3, 300), (1, 12, 5, 200),
               (2, 10, 2, 50)])                                    # one rating: train only
    train, test = splits.leave_last_out(r)
    assert sorted(map(tuple, test[["user_id", "item_id"]].to_numpy())) == [(1, 11)]
    assert len(train) == 3 and (1, 11) not in set(zip(train.user_id, train.item_id, strict=True))


def test_leave_last_out_breaks_timestamp_ties_by_the_seeded_shuffle():
    """Equal latest timestamps: the test item follows the seed, not item id or file order."""
    r = frame([(u, i, 3, 70) for u in range(1, 41) for i in range(1, 6)])
    picks = {seed: tuple(splits.leave_last_out(r, seed=seed)[1]["item_id"]) for seed in (0, 1)}
    assert picks[0] == tuple(splits.leave_last_out(r, seed=0)[1]["item_id"])  # seeded
    assert picks[0] != picks[1]
    assert len(set(picks[0])) > 1  # not always the same position
    reversed_file = r.iloc[::-1].reset_index(drop=True)
    assert len(splits.leave_last_out(reversed_file)[1]) == 40


def test_temporal_split_cuts_once_in_time():
    r = frame([(u, i, 3, 10 * i + u) for u in range(1, 6) for i in range(1, 11)])
    train, test = splits.temporal_split(r, 0.2)
    assert train["timestamp"].max() < test["timestamp"].min()
    assert abs(len(test) - 10) <= 1
    with pytest.raises(ValueError, match="one side"):
        splits.temporal_split(frame([(1, 1, 3, 5), (1, 2, 3, 5)]), 0.5)


def test_random_split_is_seeded_and_disjoint():
    r = frame([(u, i, 3, 0) for u in range(1, 11) for i in range(1, 11)])
    a_train, a_test = splits.random_split(r, 0.2, seed=0)
    b_train, b_test = splits.random_split(r, 0.2, seed=0)
    c_train, c_test = splits.random_split(r, 0.2, seed=1)
    assert len(a_test) == 20 and len(a_train) == 80
    pd.testing.assert_frame_equal(a_test, b_test)
    assert not a_test.equals(c_test)
    pairs = set(zip(a_train.user_id, a_train.item_id, strict=True))
    assert not pairs & set(zip(a_test.user_id, a_test.item_id, strict=True))
    with pytest.raises(ValueError, match="test_fraction"):
        splits.random_split(r, 1.0)


def test_encode_marks_unknown_users_and_items():
    train = frame([(5, 100, 4, 0), (7, 200, 2, 0)])
    test = frame([(5, 200, 3, 0), (9, 100, 1, 0), (7, 300, 5, 0)])
    enc = splits.encode(train, test)
    assert enc.train.shape == (2, 2) and enc.train.dtype == np.float32
    np.testing.assert_array_equal(enc.test_users, [0, -1, 1])
    np.testing.assert_array_equal(enc.test_items, [1, 0, -1])
    np.testing.assert_array_equal(enc.known, [True, False, False])
    with pytest.raises(ValueError, match="lacks columns"):
        splits.encode(train.drop(columns="timestamp"), test)


def test_encode_refuses_duplicate_train_pairs():
    with pytest.raises(ValueError, match="1 duplicate"):
        splits.encode(frame([(1, 1, 4, 0), (1, 1, 2, 1)]), frame([(1, 1, 3, 0)]))


# -- the protocol's fallback ----------------------------------------------------------------
class Constant(RatingPredictor):
    """Predicts 5 everywhere except NaN for item 0 (a model with a non-finite prediction)."""

    name, note = "constant", "5, NaN for item 0"

    def fit(self, train):
        self._set_train(train)
        return self

    def predict(self, users, items):
        return np.where(np.asarray(items) == 0, np.nan, 5.0)


def test_unknown_pairs_and_nonfinite_predictions_get_the_global_mean_and_are_counted():
    train = frame([(1, 1, 1, 0), (1, 2, 3, 0), (2, 2, 5, 0)])     # global mean 3
    test = frame([(1, 2, 5, 0),    # known, model says 5: error 0
                  (2, 1, 3, 0),    # known, model says NaN -> 3: error 0
                  (3, 2, 4, 0),    # unknown user -> 3: error 1
                  (1, 9, 1, 0)])   # unknown item -> 3: error 2
    row = ev.eval_rating(Constant(), splits.encode(train, test))
    assert row["fallback_unknown"] == 2 and row["fallback_nonfinite"] == 1
    assert row["n_test"] == 4
    assert row["rmse"] == pytest.approx(math.sqrt((0 + 0 + 1 + 4) / 4))
    assert row["mae"] == pytest.approx(3 / 4)


class Fixed(Recommender):
    """Recommends train items 0 and 1 to everyone, whatever they rated (checks the metric
    plumbing, not exclusion)."""

    name, note = "fixed-list", "items 0, 1"

    def fit(self, train):
        self._set_train(train)
        return self

    def recommend(self, users, n):
        items = np.tile(np.array([0, 1] + [-1] * (n - 2)), (len(users), 1))
        return TopN(items, np.where(items >= 0, 1.0, np.nan))


def test_topn_protocol_counts_an_unknown_held_out_item_as_a_miss():
    # train items (by id) 10 -> 0, 11 -> 1, 12 -> 2. Held out: user 1 item 11 (a hit at rank
    # 2), user 2 item 99, which nobody rated in train (relevant, but no model can find it),
    # user 3 item 12 (a miss)
    ratings = frame([(1, 10, 4, 1), (1, 12, 4, 2), (1, 11, 5, 3),
                     (2, 10, 3, 1), (2, 12, 3, 2), (2, 99, 5, 3),
                     (3, 11, 2, 1), (3, 12, 4, 2)])
    enc = splits.encode(*splits.leave_last_out(ratings))
    row = ev.eval_topn(Fixed(), enc, n=2)
    assert row["users"] == 3 and row["hits"] == 1 and row["test_items_unknown"] == 1
    assert row["recall"] == pytest.approx(1 / 3) and row["precision"] == pytest.approx(1 / 6)
    assert row["ndcg"] == pytest.approx((1 / math.log2(3)) / 3)
    assert row["coverage"] == pytest.approx(2 / 3)


def test_a_model_over_the_memory_budget_is_skipped_with_the_reason(monkeypatch):
    pytest.importorskip("surprise")
    from recsys_fast import memory
    from recsys_fast.models import SurpriseKNN

    monkeypatch.setattr(memory, "available_bytes", lambda: 100)  # needs 5 x 32 B
    enc = splits.encode(frame([(1, 1, 4, 0), (2, 1, 3, 0), (2, 2, 5, 0)]), frame([(1, 2, 3, 0)]))
    model = SurpriseKNN("basic", "user", 40)
    row = ev._run({"model": model.name}, lambda: ev.eval_rating(model, enc))
    assert row["status"] == "skipped" and "similarity (2 x 2)" in row["reason"]


@pytest.mark.parametrize("argv", [["--models", ","], ["--dataset", " , "], ["--models", ""]])
def test_eval_refuses_an_empty_selection(argv, capsys, tmp_path):
    from recsys_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", *argv, "--out", str(tmp_path)])
    assert exc.value.code == 2 and "empty list" in capsys.readouterr().err
    assert not list(tmp_path.rglob("quality-*.json"))


def test_eval_command_refuses_unknown_models_and_data_sets(capsys):
    from recsys_fast.cli import main

    assert main(["eval", "--models", "fixed-user-k50,no-such-model"]) == 2
    assert "unknown models ['no-such-model']" in capsys.readouterr().err
    assert main(["eval", "--dataset", "ml-7", "--models", "fixed-user-k50"]) == 2
    assert "unknown data set 'ml-7'" in capsys.readouterr().err
    assert main(["eval", "--list"]) == 0
    assert "surprise-knnwithmeans-item-kall" in capsys.readouterr().out


def test_a_broken_model_is_an_error_row_and_the_run_goes_on():
    def boom():
        raise ZeroDivisionError("inside the model")

    row = ev._run({"model": "m"}, boom)
    assert row["status"] == "error" and "ZeroDivisionError" in row["reason"]


def test_fold_means_average_the_five_folds():
    rows = [{"task": "rating", "dataset": "d", "split": f"u{k}", "model": "m", "note": "",
             "version": "1", "status": "ok", "rmse": float(k), "mae": 1.0, "fallback_unknown": 1,
             "fallback_nonfinite": 0, "fit_s": 1.0, "predict_s": 1.0} for k in range(1, 6)]
    (mean,) = ev.fold_means(rows)
    assert mean["split"] == "u1-u5" and mean["rmse"] == 3.0 and mean["fallback_unknown"] == 5
    rows[2] = {**rows[2], "status": "error", "reason": "boom"}
    (mean,) = ev.fold_means(rows)
    assert mean["status"] == "error" and mean["reason"] == "boom"


def test_evaluate_refuses_an_unknown_data_set():
    with pytest.raises(ValueError, match="unknown data set 'ml-7'"):
        ev.evaluate(["ml-7"], list)


# -- results files and the table -------------------------------------------------------------
def _doc(rows):
    return store.build_document(rows, settings={}, protocol="test")


def test_results_file_is_written_once_and_reads_back(tmp_path):
    rows = [{"task": "rating", "dataset": "ml-100k", "split": "ua", "model": "m", "status": "ok",
             "rmse": 0.9, "mae": 0.7, "n_test": 10, "fallback_unknown": 1,
             "fallback_nonfinite": 0, "x": float("nan")},
            {"task": "topn", "dataset": "ml-100k", "split": "leave-last-out", "model": "p",
             "status": "skipped", "reason": "needs the optional package 'p'"}]
    doc = _doc(rows)
    a = store.write_document(doc, tmp_path)
    b = store.write_document(doc, tmp_path)
    assert a != b and a.name.startswith("quality-") and a.parent.name == doc["machine_id"]
    back = store.load_document(a)
    assert back["rows"][0]["x"] is None  # strict JSON: NaN written as null
    assert store.quality_files(tmp_path) == sorted([a, b])
    # the speed report never mistakes a quality file for a run
    assert speed_results.latest_results(tmp_path) == []


def test_a_skip_without_reason_is_refused(tmp_path):
    doc = _doc([{"task": "topn", "dataset": "d", "split": "s", "model": "m", "status": "skipped"}])
    with pytest.raises(DataFormatError, match="without a reason"):
        store.write_document(doc, tmp_path)
    bad = tmp_path / "quality-x.json"
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(DataFormatError, match="not a recsys_fast quality"):
        store.load_document(bad)


def test_quality_markdown_merges_files_ok_over_skipped(tmp_path):
    skip = {"task": "topn", "dataset": "ml-100k", "split": "leave-last-out", "model": "lk",
            "status": "skipped", "reason": "needs lenskit"}
    ok = {**skip, "status": "ok", "precision": 0.01, "recall": 0.1, "ndcg": 0.05,
          "coverage": 0.2, "users": 943, "hits": 94, "test_items_unknown": 3, "fit_s": 1.0,
          "recommend_s": 2.0}
    rating = {"task": "rating", "dataset": "ml-100k", "split": "ua", "model": "fixed", "status":
              "ok", "rmse": 0.9876, "mae": 0.7654, "n_test": 9430, "fallback_unknown": 2,
              "fallback_nonfinite": 0}
    a = store.write_document(_doc([skip, rating]), tmp_path)
    b = store.write_document(_doc([ok]), tmp_path)
    text = report.quality_markdown([a, b])
    assert "| lk | 0.0100 | 0.1000 | 0.0500 | 0.200 | 3.0 |" in text
    assert "| fixed | 0.988 / 0.765 |" in text and "2 of 9,430" in text
    assert "needs lenskit" not in text
    assert "needs lenskit" in report.quality_markdown([a])
    assert "larger item id" in text  # _doc's protocol text predates the seeded tie rule


def test_quality_markdown_shows_intervals_and_the_tuned_choice(tmp_path):
    row = {"task": "topn", "dataset": "ml-100k", "split": "temporal-80-20",
           "model": "knn-tuned", "status": "ok", "precision": 0.01, "recall": 0.1,
           "ndcg": 0.05, "coverage": 0.2, "users": 109, "hits": 9, "test_items_unknown": 3,
           "fit_s": 1.0, "recommend_s": 2.0, "precision_ci": [0.005, 0.02],
           "recall_ci": [0.05, 0.15], "ndcg_ci": [0.03, 0.07],
           "tuned": {"kind": "item", "k": 10, "weighting": "bm25"}}
    doc = _doc([row])
    doc["protocol"] = ev.__doc__
    text = report.quality_markdown([store.write_document(doc, tmp_path)])
    assert "(temporal-80-20, 109 users, 3 held-out items unknown in train; 95 % bootstrap " \
           "intervals over users)" in text
    assert "| knn-tuned (item bm25, K=10) | 0.0100 [0.0050, 0.0200] | 0.1000 [0.0500, " \
           "0.1500] | 0.0500 [0.0300, 0.0700] | 0.200 | 3.0 |" in text
    assert "larger item id" not in text


# -- end to end -----------------------------------------------------------------------------
@pytest.mark.realdata
def test_eval_command_on_ml100k(tmp_path, ml100k_dir, capsys):
    from recsys_fast.cli import main

    rc = main(["eval", "--dataset", "ml-100k", "--models", "fixed-item-k50,course-user",
               "--data-root", str(ml100k_dir.parent), "--out", str(tmp_path), "--no-published"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    (path,) = store.quality_files(tmp_path)
    doc = store.load_document(path)
    got = {(r["task"], r["split"], r["model"]): r for r in doc["rows"]}
    assert {s for t, s, _ in got if t == "rating"} == {"ua", "ub", "u1", "u2", "u3", "u4", "u5",
                                                       "u1-u5"}
    ua = got[("rating", "ua", "fixed-item-k50")]
    # ua.test's users all rate in ua.base; its items only in ua.test fall back, counted
    assert ua["n_test"] == 9430 and 0 < ua["fallback_unknown"] < 50
    assert 0.85 < ua["rmse"] < 1.1 and ua["mae"] < ua["rmse"]
    top = got[("topn", "leave-last-out", "fixed-item-k50")]
    assert top["users"] == 943 and 0 <= top["precision"] <= 0.1
    assert "ml-100k u1-u5" in out.out and "[ml-100k ua] fixed-item-k50" in out.err


@pytest.mark.realdata
def test_fixed_cf_model_matches_the_kernels_own_ua_evaluation(ml100k_dir):
    """The protocol's ua RMSE of fixed-user-k50 equals evaluate_rmse_ua's, which builds its
    matrix differently (max-id shape): the same predictions, the same test pairs."""
    from recsys_fast.data.loaders import load_ml100k_split
    from recsys_fast.kernels.predict import evaluate_rmse_ua

    train, test = load_ml100k_split(ml100k_dir, "ua")
    enc = splits.encode(train.ratings, test.ratings)
    row = ev.eval_rating(FixedCFModel("user", 50), enc)
    want = evaluate_rmse_ua(ml100k_dir, k=50)["fixed_user"]
    # the two differ only on the unknown pairs: FixedCF's own fallback vs the global mean
    assert row["rmse"] == pytest.approx(want, abs=2e-3)


# -- committed results ----------------------------------------------------------------------
COMMITTED = store.quality_files(ROOT)


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_quality_files_load_and_come_from_clean_trees(path):
    doc = store.load_document(path)
    assert doc["git"] and doc["git"]["commit"] and doc["git"]["dirty"] is False
    assert any(r["status"] == "ok" for r in doc["rows"])
    assert doc["machine_id"] == path.parent.name


# -- baselines, intervals, tuning -------------------------------------------------------------
def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    rng = np.random.default_rng(3)
    v = rng.random(400)
    lo, hi = metrics.bootstrap_interval(v)
    assert lo < v.mean() < hi
    assert (lo, hi) == metrics.bootstrap_interval(v)
    lo2, hi2 = metrics.bootstrap_interval(np.tile(v, 4))
    assert hi2 - lo2 < hi - lo  # four times the users: about half the width
    assert all(math.isnan(x) for x in metrics.bootstrap_interval([]))
    assert metrics.bootstrap_interval(np.full(50, 0.25)) == (0.25, 0.25)


def test_most_popular_ranks_by_train_count_and_leaves_rated_items_out():
    import scipy.sparse

    from recsys_fast.models import MostPopular

    R = scipy.sparse.csr_matrix(np.array([[1, 1, 0, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 0, 0],
                                          [0, 0, 1, 0, 0]], dtype=np.float32))
    # counts: item0 1, item1 3, item2 2, item3 2, item4 0
    top = MostPopular().fit(R).recommend([3, 0], 4)
    assert top.items[0].tolist() == [1, 3, 0, -1]  # rated item 2 out; 2 and 3 tie: lower first
    assert top.scores[0, :3].tolist() == [3, 2, 1]
    assert top.items[1].tolist() == [2, -1, -1, -1]  # never-rated item 4 is not listed


def test_random_ranker_is_seeded_and_leaves_rated_items_out():
    import scipy.sparse

    from recsys_fast.models import RandomRanker

    R = scipy.sparse.random(30, 50, density=0.2, random_state=1, format="csr", dtype=np.float32)
    a = RandomRanker(0).fit(R).recommend(np.arange(30), 10)
    b = RandomRanker(0).fit(R).recommend(np.arange(30), 10)
    c = RandomRanker(1).fit(R).recommend(np.arange(30), 10)
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.items, c.items)
    for u in range(30):
        assert not set(a.items[u]) & set(R[u].indices)


def _ratings_frame(seed=0, users=60, items=40, per_user=12):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, users + 1):
        for t, i in enumerate(rng.choice(np.arange(1, items + 1), per_user, replace=False)):
            rows.append((u, int(i), int(rng.integers(1, 6)), 1000 * t + u))
    return frame(rows)


def test_tuning_picks_the_best_validation_config_from_train_alone():
    from recsys_fast.models import ItemKNNModel, TunedKNN, UserKNNModel

    ratings = _ratings_frame()
    train, test = splits.leave_last_out(ratings)
    model = TunedKNN()
    out = ev.tune(model, train, splits.leave_last_out)
    assert out["tuned"] in list(model.GRID) and model.params() == out["tuned"]
    valid = splits.encode(*splits.leave_last_out(train))

    def fresh(cfg):
        cfg = dict(cfg)
        kind = cfg.pop("kind")
        return ItemKNNModel(**cfg) if kind == "item" else UserKNNModel(**cfg)

    scores = [ev.eval_topn(fresh(cfg), valid)["ndcg"] for cfg in model.GRID]
    assert {c["kind"] for c in model.GRID} == {"item", "user"}
    assert out["validation_ndcg"] == pytest.approx(max(scores))
    assert model.GRID[int(np.argmax(scores))] == out["tuned"]  # ties: the earlier config
    assert model.name == "knn-tuned" and TunedKNN.describe(out["tuned"]) in model.note


def test_topn_rows_carry_intervals_and_the_tuned_choice():
    from recsys_fast.models import MostPopular, TunedKNN

    ratings = _ratings_frame(1)
    train, test = splits.leave_last_out(ratings)
    enc = splits.encode(train, test)
    row = ev._topn_row(TunedKNN(), train, splits.leave_last_out, enc)
    assert "tuned" in row and row["validation_ndcg"] >= 0
    for name in metrics.MEAN_METRICS:
        lo, hi = row[f"{name}_ci"]
        assert lo <= row[name] <= hi
    pop = ev._topn_row(MostPopular(), train, splits.leave_last_out, enc)
    assert "tuned" not in pop and pop["users"] == row["users"] == 60


def test_a_missing_data_set_fails_before_any_model_runs(tmp_path):
    from recsys_fast.errors import DatasetNotFoundError

    made = []
    with pytest.raises(DatasetNotFoundError, match="movies-ratings-small"):
        ev.evaluate(["synthetic-1m", "movies-ratings-small"], lambda: made.append(1) or [],
                    paths={"movies-ratings-small": tmp_path / "absent"})
    assert made == []


@pytest.mark.realdata
def test_eval_finds_ratings_small_in_its_own_folder(monkeypatch, capsys, tmp_path):
    from conftest import real_path

    from recsys_fast.cli import main

    root = real_path("movies-dataset").parent
    monkeypatch.setenv("RECSYS_FAST_SHARED", str(root))
    assert main(["eval", "--dataset", "movies-ratings-small", "--models", "most-popular",
                 "--no-rating", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "**Top-10, movies-ratings-small** (leave-last-out, 671 users" in out


# -- metrics against ranx ---------------------------------------------------------------------
def _ranx_per_user(top_items, lists, users, k):
    ranx = pytest.importorskip("ranx")
    qrels = ranx.Qrels({f"u{u}": {f"i{i}": 1 for i in rel} for u, rel in zip(users, lists,
                                                                               strict=True)})
    run = ranx.Run({f"u{u}": {f"i{i}": float(k - pos) for pos, i in enumerate(row) if i >= 0}
                    or {"none": 0.0} for u, row in zip(users, top_items, strict=True)})
    ranx.evaluate(qrels, run, [f"precision@{k}", f"recall@{k}", f"ndcg@{k}"],
                  make_comparable=True)
    return {name: np.array([run.scores[f"{name}@{k}"][f"u{u}"] for u in users])
            for name in metrics.MEAN_METRICS}


def _lists_of(enc, users):
    relevant = {int(u): [] for u in users}
    for u, i in zip(enc.test_users.tolist(), enc.test_items.tolist(), strict=True):
        if u >= 0 and i >= 0:
            relevant[u].append(i)
    return [relevant[int(u)] or [-2] for u in users]


def _assert_metrics_equal_ranx(ratings, split_fn):
    from recsys_fast.models import ItemKNNModel, MostPopular

    enc = splits.encode(*split_fn(ratings))
    users = np.unique(enc.test_users[enc.test_users >= 0])
    lists = _lists_of(enc, users)
    for model in (ItemKNNModel(50, "cosine"), MostPopular()):
        top = model.fit(enc.train).recommend(users, 10)
        ours = metrics.topn_per_user(top.items, lists, 10, enc.train.shape[1])
        theirs = _ranx_per_user(top.items, lists, users, 10)
        for name in metrics.MEAN_METRICS:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-9,
                                       err_msg=f"{model.name} {name}")


@pytest.mark.slow  # ~20 s: a 100k synthetic set, and ranx compiles its metrics with numba
def test_metrics_equal_ranx_on_synthetic_lists():
    from recsys_fast.data.synthetic import generate

    _assert_metrics_equal_ranx(generate("100k", seed=0).ratings, ev.TOPN_SPLITS["temporal-80-20"])


@pytest.mark.slow  # ranx compiles its metrics with numba: ~30 s in a fresh environment
@pytest.mark.realdata
def test_metrics_equal_ranx_on_ml100k_lists(ml100k_dir):
    from recsys_fast.data import load_ml100k

    _assert_metrics_equal_ranx(load_ml100k(ml100k_dir).ratings, ev.TOPN_SPLITS["leave-last-out"])


def test_a_quality_file_with_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "m" / "quality-20300101T000000Z-aaaaaa.json"
    path.parent.mkdir()
    path.write_text('{"rows": [], "rows": []}')
    with pytest.raises(DataFormatError, match="duplicate key 'rows'"):
        store.load_document(path)
