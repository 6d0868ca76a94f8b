"""YouTube DNN: features (naive == vectorised), model equivalence naive vs optimised, pipelines,
sampled softmax, memory guard, bad input. Small handmade data, few epochs."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from recsys_fast.data.interactions import (  # noqa: E402
    Interactions,
    make_items_frame,
    make_ratings_frame,
)
from recsys_fast.dnn import features as F  # noqa: E402
from recsys_fast.dnn import model as M  # noqa: E402
from recsys_fast.dnn import pipeline as P  # noqa: E402
from recsys_fast.dnn import train as T  # noqa: E402
from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError  # noqa: E402
from recsys_fast.naive import youtube_dnn as N  # noqa: E402

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def make_inter(seed=0, n_users=40, n_items=30, max_per_user=25, name="tiny") -> Interactions:
    """Random histories of 1..max_per_user distinct items, tied timestamps, unrated catalogue
    items and one rated item missing from the items frame."""
    rng = np.random.default_rng(seed)
    users, items, ratings, ts = [], [], [], []
    for u in range(n_users):
        n = int(rng.integers(1, max_per_user + 1)) if u else 1  # user 0: a single rating
        chosen = rng.choice(n_items, size=min(n, n_items), replace=False)
        users += [u + 100] * len(chosen)
        items += (chosen * 3 + 7).tolist()  # sparse original ids
        ratings += rng.integers(1, 6, len(chosen)).tolist()
        ts += rng.integers(0, 10, len(chosen)).tolist()  # many ties
    ratings_df = make_ratings_frame(users, items, ratings, ts)
    cat = np.arange(n_items + 3) * 3 + 7
    genres = ["|".join(rng.choice(GENRES, int(rng.integers(0, 3)), replace=False)) for _ in cat]
    items_df = make_items_frame(cat[1:], genres=genres[1:])  # item 7 has no row
    return Interactions(ratings_df, items_df, name=name)


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return make_inter()


@pytest.fixture(scope="module")
def feats(inter) -> F.UserFeatures:
    return F.build_user_features(inter)


def same_features(a: F.UserFeatures, b: F.UserFeatures) -> None:
    for f in F.FIELDS:
        assert a.field(f).equals(b.field(f)), f
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    np.testing.assert_array_equal(a.item_counts, b.item_counts)
    assert a.genre_names == b.genre_names and a.n_users_dropped == b.n_users_dropped


# -- features -------------------------------------------------------------------------------
@pytest.mark.parametrize("history,cap", [("course", None), ("course", 4), ("paper", None)])
@pytest.mark.parametrize("leave_out,per_user", [(0, 1), (1, 1), (2, 1), (1, 3), (2, 50)])
def test_vectorised_features_equal_naive_pandas(inter, history, cap, leave_out, per_user):
    a = F.build_user_features(inter, history=history, max_history=cap, leave_out=leave_out,
                              labels_per_user=per_user)
    b = N.build_features(inter, history=history, max_history=cap, leave_out=leave_out,
                         labels_per_user=per_user)
    same_features(a, b)
    if per_user > 1:  # more examples than users: several label positions each
        assert a.n_examples > len(np.unique(a.user_ids))


def test_labels_per_user_roll_back_through_a_history():
    """Labels 3 per user, one held out, min history 2: a user with items a..e (by time) gets
    examples (a b -> c) and (a b c -> d); one with two items gets none and is dropped."""
    ratings = make_ratings_frame([1, 1, 1, 1, 1, 2, 2], [10, 20, 30, 40, 50, 10, 20],
                                 [5, 1, 4, 2, 3, 3, 3], [5, 1, 3, 4, 9, 0, 1])
    items = make_items_frame([10, 20, 30, 40, 50], genres=["A", "B", "", "C", "A"])
    inter = Interactions(ratings, items)  # user 1 by time: 20, 30, 40, 10, 50
    f = F.build_user_features(inter, leave_out=1, labels_per_user=3, min_history=2)
    ids = f.item_ids
    assert [list(ids[np.asarray(w) - 1]) for w in f.watched.to_lists()] == [[20, 30],
                                                                            [20, 30, 40]]
    assert list(f.tokens_to_items(f.labels)) == [40, 10]
    assert list(f.user_ids) == [1, 1] and f.n_users_dropped == 1


def test_features_semantics_on_a_handmade_user():
    ratings = make_ratings_frame(
        [1, 1, 1, 1, 1, 2, 2],
        [10, 20, 30, 40, 50, 10, 20],
        [5, 1, 4, 2, 3, 3, 3],
        [5, 1, 3, 3, 9, 0, 1],
    )
    items = make_items_frame([10, 20, 30, 40, 50], genres=["A|B", "B", "", "C", "A"])
    f = F.build_user_features(Interactions(ratings, items))
    tok = {i: t for t, i in enumerate(f.item_ids, start=1)}
    # user 1 by time: 20(t1), 30(t3), 40(t3, later in file), 10(t5), 50(t9) -> label 50
    assert f.watched.row(0).tolist() == [tok[20], tok[30], tok[40], tok[10]]
    assert f.liked.row(0).tolist() == [tok[30], tok[10]]
    assert f.disliked.row(0).tolist() == [tok[20], tok[40]]
    assert f.genre.row(0).tolist() == [1, 2, 3]  # A, B, C
    assert f.labels.tolist() == [tok[50], tok[20]]
    assert f.num_classes == 6 and f.tokens_to_items(f.labels).tolist() == [50, 20]
    train, test = F.split_last(Interactions(ratings, items))
    assert train.labels[0] == tok[10] and test.labels[0] == tok[50]
    assert train.watched.row(0).tolist() == [tok[20], tok[30], tok[40]]


def test_history_cap_keeps_most_recent(inter):
    full = F.build_user_features(inter)
    capped = F.build_user_features(inter, history="course", max_history=3)
    for i in range(full.n_examples):
        assert capped.watched.row(i).tolist() == full.watched.row(i)[-3:].tolist()
    paper = F.build_user_features(
        make_inter(1, n_users=5, max_per_user=200, n_items=120), history="paper"
    )
    assert paper.watched.lengths.max() == F.PAPER_MAX_HISTORY


def test_users_without_history_are_dropped_and_counted(inter, feats):
    assert 100 not in feats.user_ids.tolist()  # user 0 has one rating: no earlier item
    assert feats.n_users_dropped >= 1
    assert feats.n_examples + feats.n_users_dropped == inter.n_users
    single = Interactions(make_ratings_frame([1, 2], [5, 6], [3, 4]), make_items_frame([5, 6]))
    with pytest.raises(ValueError, match="too short a history"):
        F.build_user_features(single)
    with pytest.raises(ValueError, match="too short a history"):
        N.build_features(single)


def test_unseen_items_error_or_drop(inter, feats):
    extra = inter.ratings.copy()
    extra.loc[len(extra)] = [100, 99999, 5.0, 99]  # user 100's newest item is unknown
    other = Interactions(extra, inter.items, name="with-new")
    with pytest.raises(ValueError, match=r"not in the vocabulary, e.g. \[99999\]"):
        F.build_user_features(other, vocab=feats.item_ids)
    dropped = F.build_user_features(other, vocab=feats.item_ids, unseen="drop")
    same_features(dropped, feats)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"history": "all"}, "history must be"),
        ({"leave_out": -1}, "leave_out"),
        ({"labels_per_user": 0}, "labels_per_user"),
        ({"max_history": 0}, "max_history"),
        ({"unseen": "skip", "vocab": np.arange(3)}, "unseen"),
    ],
)
def test_bad_feature_options(inter, kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.build_user_features(inter, **kwargs)


def test_ragged_take_and_pad():
    r = F.Ragged.from_lists([[1, 2, 3], [], [4]])
    assert r.take(np.array([2, 0])).to_lists() == [[4], [1, 2, 3]]
    np.testing.assert_array_equal(r.pad(np.array([1, 0]), 4), [[0, 0, 0, 0], [1, 2, 3, 0]])
    with pytest.raises(ValueError, match="pad width is 2"):
        r.pad(np.array([0]), 2)
    with pytest.raises(ValueError, match="splits"):
        F.Ragged(np.array([1, 2]), np.array([0, 3]))


# -- batching -------------------------------------------------------------------------------
def test_plan_covers_every_user_once_and_widths_hold_rows(feats):
    plan = P.plan_batches(feats, 7, boundaries=[2, 4, 100, 200], seed=3)
    rows = np.concatenate(plan.rows)
    assert sorted(rows.tolist()) == list(range(feats.n_examples))
    for r, w in zip(plan.rows, plan.widths, strict=True):
        for k, f in enumerate(F.FIELDS):
            assert feats.field(f).lengths[r].max() <= w[k]
    # the (100, 200] bucket is empty: no batch pads to 200
    assert plan.widths[:, 0].max() <= 100 and len(plan) == len(plan.widths)
    with pytest.raises(ValueError, match="batch_size"):
        P.plan_batches(feats, 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        P.plan_batches(feats, 4, boundaries=[5, 3])


@pytest.mark.parametrize("target", ["full", "sampled"])
def test_numpy_batcher_yields_the_tf_data_batches(feats, target):
    plan = P.plan_batches(feats, 8, boundaries=[4, 8, 16], seed=1)
    ds = P.make_tf_dataset(feats, plan, target=target, shuffle=False)
    nb = P.NumpyBatches(feats, plan, target=target, shuffle=False)
    got = list(ds.as_numpy_iterator())
    assert len(got) == len(nb) == len(plan)
    for i, (x, y) in enumerate(got):
        xn, yn = nb[i]
        assert len(x) == len(xn)
        for a, b in zip(x, xn, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(y, yn)
    # with shuffling: same batches, other order
    shuffled = P.make_tf_dataset(feats, plan, target=target, shuffle=True, seed=5)
    key = sorted(tuple(y.tolist()) for _x, y in shuffled.as_numpy_iterator())
    assert key == sorted(tuple(nb[i][1].tolist()) for i in range(len(nb)))


# -- model equivalence ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(feats):
    """A course model after 3 naive epochs (BN moving stats no longer trivial)."""
    state = N.prepare_naive(feats, seed=0)
    N.fit_naive_epochs(state, 3)
    return state


def test_loss_falls_over_epochs_naive(trained):
    loss = trained.history["loss"]
    assert len(loss) == 3 and loss[-1] < loss[0]


def test_unused_batch_norms_are_not_in_the_model(trained):
    names = {layer.name for layer in trained.model.layers}
    assert "dense_3_batch_norm" in names
    assert "dense_1_batch_norm" not in names and "dense_2_batch_norm" not in names


def test_bucketed_forward_equals_naive_padded_forward(trained, feats):
    naive = trained.model.predict(trained.inputs, verbose=0)
    for batch, bounds in [(5, None), (64, []), (3, [1, 2, 3, 5, 8])]:
        plan = P.plan_batches(feats, batch, boundaries=bounds, shuffle=True, seed=2)
        out = np.zeros_like(naive)
        for rows, w in zip(plan.rows, plan.widths, strict=True):
            x, _ = P.numpy_batch(feats, rows, w)
            out[rows] = keras.ops.convert_to_numpy(trained.model(list(x), training=False))
        np.testing.assert_allclose(out, naive, atol=1e-5, rtol=0)
    np.testing.assert_allclose(T.predict_bucketed(trained.model, feats, 4), naive, atol=1e-5)


def test_all_padding_rows_give_finite_output(trained):
    x = [np.zeros((2, 3), np.int32)] * 4
    assert np.isfinite(keras.ops.convert_to_numpy(trained.model(x, training=False))).all()


def test_full_softmax_loss_and_update_equal_on_the_same_batch(trained, feats):
    rows = np.arange(feats.n_examples)[::2]
    naive_x = [a[rows] for a in trained.inputs]
    plan = P.plan_batches(feats, len(rows), boundaries=[], shuffle=False)
    x_opt, y = P.numpy_batch(feats, rows, plan.widths[0] + 5)  # wider padding on purpose
    loss = keras.losses.sparse_categorical_crossentropy
    for training in (False, True):
        a = loss(y, trained.model(naive_x, training=training))
        b = loss(y, trained.model(list(x_opt), training=training))
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5
        )
    # one SGD step from identical weights on either padding -> identical weights. (Not Adam:
    # its first step is ~lr * sign(g), which blows float noise on near-zero gradients up to lr.)
    weights = trained.model.get_weights()
    results = []
    for x in (naive_x, list(x_opt)):
        m = M.build_model(feats.num_classes, feature_vocab_size=feats.feature_vocab_size)
        m.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        m.set_weights(weights)
        m.train_on_batch(x, y)
        results.append(m.get_weights())
    for wa, wb in zip(*results, strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


# -- optimised training ---------------------------------------------------------------------
@pytest.mark.parametrize("pipeline", ["tf", pytest.param("numpy", marks=pytest.mark.slow)])
def test_optimised_full_softmax_learns(feats, pipeline):
    st = T.prepare_optimised(
        feats, batch_size=16, boundaries=[8], pipeline=pipeline, seed=0, steps_per_execution=2
    )
    out = T.fit_optimised_epochs(st, 3)
    assert out["loss"][-1] < out["loss"][0] and out["examples_per_s"] > 0
    thr = T.pipeline_throughput(st)
    assert thr["examples"] == feats.n_examples and thr["examples_per_s"] > 0


def test_steps_per_execution_auto_and_bad_values(feats):
    import keras

    want = T.STEPS_PER_EXECUTION_TF if keras.backend.backend() == "tensorflow" else 1
    assert T.resolve_steps_per_execution("auto") == want
    assert T.resolve_steps_per_execution(3) == 3
    for bad in (0, -1, 2.5, True, "fast"):
        with pytest.raises(ValueError, match="steps_per_execution"):
            T.resolve_steps_per_execution(bad)
    st = T.prepare_optimised(feats, batch_size=16, boundaries=[8], seed=0)
    assert st.options["steps_per_execution"] == want


def test_steps_per_execution_does_not_change_the_training(feats):
    """Several steps per graph call run the same steps in the same order: same weights."""
    weights = []
    for steps in (1, 4):
        st = T.prepare_optimised(feats, batch_size=16, boundaries=[8], seed=0, shuffle=False,
                                 steps_per_execution=steps)
        T.fit_optimised_epochs(st, 1)
        weights.append(st.model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "sampler", ["log_uniform", pytest.param("unigram", marks=pytest.mark.slow)]
)
def test_sampled_softmax_trains_the_shared_model(feats, sampler):
    st = T.prepare_optimised(
        feats,
        batch_size=16,
        boundaries=[8],
        loss="sampled",
        num_sampled=10,
        sampler=sampler,
        history="paper",
        seed=0,
    )
    before = st.model.get_layer(M.OUTPUT_LAYER).get_weights()[0].copy()
    out = T.fit_optimised_epochs(st, 3)
    assert np.isfinite(out["loss"]).all() and out["loss"][-1] < out["loss"][0]
    after = st.model.get_layer(M.OUTPUT_LAYER).get_weights()[0]
    assert not np.allclose(before, after)  # the full-softmax head was trained
    assert len(st.train_model.trainable_variables) == len(st.model.trainable_variables)


def test_log_uniform_probabilities_and_accidental_hits():
    np.testing.assert_allclose(np.exp(M.log_uniform_log_q(1000)).sum(), 1.0, rtol=1e-9)
    out = keras.layers.Dense(4)
    out.build((None, 3))
    head = M.SampledSoftmaxLogits(out, np.array([0, 5, 1, 1]), 50, seed=0)
    logits = keras.ops.convert_to_numpy(head(np.ones((2, 3), np.float32), np.array([1, 2])))
    assert logits.shape == (2, 51)
    sampled = keras.ops.convert_to_numpy(head.sample())
    assert sampled.min() >= 1 and sampled.max() <= 3
    assert (logits[:, 1:] <= -1e8).any()  # 50 draws from 3 items always hit a label
    with pytest.raises(ValueError, match="sampler"):
        M.SampledSoftmaxLogits(out, np.array([0, 1, 1, 1]), 5, sampler="uniform")


# -- evaluation and recommendation ----------------------------------------------------------
def test_recommend_naive_equals_streamed_topk(trained, feats):
    k = 5
    naive = N.recommend(trained.model, feats, k)
    fast = T.recommend_topk(trained.model, feats, k, batch_size=7)
    assert naive.shape == fast.shape == (feats.n_examples, k)
    probs = trained.model.predict(trained.inputs, verbose=0)[:, 1:]
    top = np.sort(probs, axis=1)[:, ::-1]
    untied = np.abs(top[:, k - 1] - top[:, k]) > 1e-6  # rows whose top-k set is unambiguous
    np.testing.assert_array_equal(np.sort(naive[untied], 1), np.sort(fast[untied], 1))


def test_recall_bounds_and_k_checks(trained, feats):
    r = T.evaluate_recall(trained.model, feats, k=3, batch_size=6)
    assert 0 <= r["recall@3"] <= 1 and r["recall@3"] == r["hit_rate@3"]
    assert T.evaluate_recall(trained.model, feats, k=feats.n_items)[f"recall@{feats.n_items}"] == 1
    for k in (0, feats.n_items + 1):
        with pytest.raises(ValueError, match="catalogue"):
            T.evaluate_recall(trained.model, feats, k=k)
        with pytest.raises(ValueError, match="catalogue"):
            N.recommend(trained.model, feats, k)


# -- memory guard and options ---------------------------------------------------------------
def test_naive_refused_at_ml25m_shape_with_the_needed_size():
    # ML-25M: 162,541 users, 59,047 items; a heavy user has thousands of ratings
    need = N.naive_memory_bytes(
        162_541, {"watched": 5000, "liked": 5000, "disliked": 5000, "genre": 20}, 59_048
    )
    assert need > 100 * 2**30
    with pytest.raises(MemoryBudgetError, match="GiB") as err:
        from recsys_fast.memory import check_memory

        check_memory("naive YouTube DNN", need, available=64 * 2**30)
    assert err.value.needed == need


def test_naive_memory_guard_before_building(inter, monkeypatch):
    with pytest.raises(MemoryBudgetError, match="naive YouTube DNN on tiny"):
        N.check_naive_memory(inter, available=1000)
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "10K")
    with pytest.raises(MemoryBudgetError):
        N.prepare_naive(inter)


def test_bad_training_options(feats):
    with pytest.raises(ValueError, match="loss"):
        T.prepare_optimised(feats, loss="nce")
    with pytest.raises(ValueError, match="pipeline"):
        T.prepare_optimised(feats, pipeline="torch")
    with pytest.raises(ValueError, match="epochs"):
        T.fit_optimised_epochs(T.prepare_optimised(feats, batch_size=16), 0)
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(BackendUnavailableError, match="GPU"):
            T.prepare_optimised(feats, mixed_precision=True)


# -- early stopping ---------------------------------------------------------------------------
class _Weights:
    def __init__(self):
        self.w = [np.zeros(2)]

    def get_weights(self):
        return self.w

    def set_weights(self, w):
        self.w = [np.array(x) for x in w]


class _State:
    """A model whose weight is the epoch count and whose validation recall follows a script."""

    def __init__(self, script):
        self.model, self.script, self.epoch = _Weights(), script, 0


def _fit(state, epochs):
    state.epoch += 1
    state.model.w[0] += 1  # in place: the kept best weights must be a copy
    return {"seconds": 2.0, "loss": [1.0 / state.epoch]}


def _recall(state, feats, k):
    return state.script[state.epoch - 1] if feats == "valid" else 0.1 * state.epoch


def test_train_until_stops_on_patience_and_keeps_the_best_epoch():
    st = _State([0.1, 0.3, 0.2, 0.3, 0.25, 0.9])
    curve = T.train_until(st, _fit, "valid", patience=3, recall=_recall, watch={"test": "test"})
    assert curve["stopped"] == "patience" and len(curve["epochs"]) == 5
    assert curve["best_epoch"] == 2 and curve["best_valid"] == 0.3  # the first of equals
    np.testing.assert_array_equal(st.model.w[0], [2, 2])  # epoch 2's weights restored
    assert [r["train_s"] for r in curve["epochs"]] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert T.seconds_to_reach(curve, "test", 0.3) == 6.0
    assert T.seconds_to_reach(curve, "test", 0.6) is None


def test_train_until_stops_on_seconds_and_epochs():
    st = _State([0.1, 0.2, 0.3, 0.4, 0.5])
    assert T.train_until(st, _fit, "valid", max_seconds=5, recall=_recall)["stopped"] == \
        "max_seconds"
    assert st.epoch == 3 and st.model.w[0][0] == 3  # the last epoch was the best
    st = _State([0.1, 0.2])
    assert T.train_until(st, _fit, "valid", max_epochs=2, recall=_recall)["stopped"] == \
        "max_epochs"
    with pytest.raises(ValueError, match="patience"):
        T.train_until(st, _fit, "valid", patience=0, recall=_recall)


def test_split_last_valid_holds_out_two_items_per_user(inter):
    train, valid, test = F.split_last_valid(inter, labels_per_user=4)
    lone = F.build_user_features(inter, leave_out=1)
    same_features(valid, lone)
    # the newest training label of a user is the item before its validation label
    last = np.r_[np.flatnonzero(np.diff(train.user_ids.astype(np.int64)) != 0),
                 train.n_examples - 1]
    want = F.build_user_features(inter, leave_out=2)
    np.testing.assert_array_equal(train.labels[last], want.labels)
    assert train.n_examples > len(want.labels)


def test_prior_bias_starts_the_output_at_log_popularity(inter):
    feats = F.build_user_features(inter)
    st = T.prepare_optimised(feats, prior_bias=True, pipeline="numpy")
    bias = st.model.get_layer(M.OUTPUT_LAYER).get_weights()[1]
    counts = feats.item_counts + 1.0
    np.testing.assert_allclose(bias, np.log(counts / counts.sum()), rtol=1e-6)
    assert np.argmax(bias) == np.argmax(feats.item_counts) and st.options["prior_bias"]
    plain = T.prepare_optimised(feats, pipeline="numpy")
    assert not plain.model.get_layer(M.OUTPUT_LAYER).get_weights()[1].any()  # course: zeros
    with pytest.raises(ValueError, match="prior_bias"):
        T.prepare_optimised(feats, prior_bias=True, model=plain.model)


def test_dnn_learns_study_runs_and_writes_its_table(tmp_path, capsys):
    """bench/dnn_learns.py at the tiny scale: early-stopped runs, a JSON per scale with each
    model's curve, and the time-to-recall table."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "dnn_learns.py"
    spec = importlib.util.spec_from_file_location("dnn_learns", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--scale", "tiny", "--models", "optimised-full,optimised-sampled-prior",
                     "--labels-per-user", "3", "--max-epochs", "2", "--patience", "1",
                     "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("*/studies/dnn_learns_tiny_*.json")
    doc = json.loads(out.read_text())
    assert set(doc["runs"]) == {"optimised-full", "optimised-sampled-prior"}
    for run in doc["runs"].values():
        assert 1 <= len(run["epochs"]) <= 2 and run["best_epoch"] <= len(run["epochs"])
        assert 0 <= run["test_at_best"] <= 1
    assert "| optimised-full |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mod.main(["--models", "optimised,bogus"])
