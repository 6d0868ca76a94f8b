"""Synthetic generator: preset shapes, determinism, invariants, text, writers, bad specs."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_fast.data import (
    SCALES,
    Interactions,
    SyntheticSpec,
    generate,
    spec_for,
    synthetic_documents,
    write_ml100k_format,
    write_retail_csv,
)
from recsys_fast.data.synthetic import SHAPES
from recsys_fast.data.text import GENRES

SMALL = SyntheticSpec(n_users=200, n_items=300, n_ratings=12_000, name="small")


@pytest.fixture(scope="module")
def ml100k_like() -> Interactions:
    return generate("100k")


def check_invariants(inter: Interactions, spec: SyntheticSpec) -> None:
    """Everything the generator promises for any spec."""
    r = inter.ratings
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(r) == spec.n_ratings
    u = r["user_id"].to_numpy()
    i = r["item_id"].to_numpy()
    # 1-based ids covering the whole range
    assert u.min() == 1 and u.max() == spec.n_users
    assert i.min() >= 1 and i.max() <= spec.n_items
    assert inter.n_users == spec.n_users
    # no duplicate (user, item) pair
    keys = (u - 1) * spec.n_items + (i - 1)
    assert len(np.unique(keys)) == len(keys)
    # at least min_per_user ratings per user
    per_user = np.bincount(u, minlength=spec.n_users + 1)[1:]
    assert per_user.min() >= spec.min_per_user
    # ratings are whole numbers 1..5
    v = r["rating"].to_numpy()
    assert r["rating"].dtype == np.float32
    assert set(np.unique(v)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # rows grouped by user, timestamps strictly increasing within a user and in range
    assert np.all(np.diff(u) >= 0)
    t = r["timestamp"].to_numpy()
    same = u[1:] == u[:-1]
    assert np.all(np.diff(t)[same] > 0)
    assert t.min() >= spec.t_start and t.max() <= spec.t_end
    # items: the whole catalogue, vote stats computed from the ratings
    items = inter.items
    assert list(items.index) == list(range(1, spec.n_items + 1))
    counts = np.bincount(i, minlength=spec.n_items + 1)[1:]
    np.testing.assert_array_equal(items["vote_count"].to_numpy(), counts)
    means = r.groupby("item_id")["rating"].mean()
    np.testing.assert_allclose(items.loc[means.index, "vote_average"], means, rtol=1e-6)
    assert (items.loc[counts == 0, "vote_average"] == 0).all()


def test_presets_have_movielens_shapes():
    assert set(SCALES) == {"100k", "1m", "10m", "25m"}
    shapes = {k: (s.n_users, s.n_items, s.n_ratings) for k, s in SCALES.items()}
    assert shapes == {
        "100k": (943, 1_682, 100_000),
        "1m": (6_040, 3_706, 1_000_209),
        "10m": (69_878, 10_677, 10_000_054),
        "25m": (162_541, 59_047, 25_000_095),
    }
    assert all(s.min_per_user == 20 for s in SCALES.values())
    assert spec_for("1M") is SCALES["1m"]
    assert spec_for(SMALL) is SMALL


def test_unknown_scale_lists_valid_names():
    with pytest.raises(ValueError, match=r"'2m'.*100k, 1m, 10m, 25m"):
        spec_for("2m")
    with pytest.raises(ValueError, match="unknown synthetic scale"):
        generate("huge")


def test_100k_preset(ml100k_like):
    spec = SCALES["100k"]
    check_invariants(ml100k_like, spec)
    assert ml100k_like.shape == (943, 1_682)
    assert ml100k_like.name == "synthetic-100k"
    assert ml100k_like.meta["spec"]["n_ratings"] == 100_000
    v = ml100k_like.values
    assert 3.3 < v.mean() < 3.7
    hist = np.bincount(v.astype(int), minlength=6)[1:]
    assert hist.argmax() == 3  # 4 stars is the most common rating
    assert hist.min() > 0.03 * len(v)
    # power law: the top 10% of items hold a large share of the ratings
    counts = np.sort(ml100k_like.items["vote_count"].to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 0.35 * counts.sum()
    # heavy-tailed activity: the busiest user rates far more than the median user
    per_user = ml100k_like.ratings.groupby("user_id").size()
    assert per_user.max() > 5 * per_user.median()


def test_1m_preset():
    spec = SCALES["1m"]
    inter = generate("1m")
    check_invariants(inter, spec)
    assert inter.shape == (6_040, 3_706)


@pytest.mark.parametrize("scale", ["10m", "25m"])
def test_large_presets_scaled_down(scale):
    spec = spec_for(scale).scaled(0.02)
    inter = generate(spec)
    check_invariants(inter, spec)
    assert inter.n_items == spec.n_items  # every item gets at least one rating


@pytest.mark.slow
def test_10m_preset_full():
    check_invariants(generate("10m"), SCALES["10m"])


def test_items_side_information(ml100k_like):
    items = ml100k_like.items
    assert items["title"].str.fullmatch(r"\S.* \((19|20)\d\d\)").all()
    genres = items["genres"].str.split("|")
    assert genres.map(lambda g: 1 <= len(g) <= 3 and set(g) <= set(GENRES[1:])).all()
    assert genres.explode().nunique() == len(GENRES) - 1
    n_words = items["text"].str.split().str.len()
    assert n_words.between(20, 60).all()
    # a topic vocabulary: items that share a genre share more words than items that do not
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(stop_words="english").fit_transform(items["text"])
    sim = (tfidf @ tfidf.T).toarray()
    first = genres.str[0].to_numpy()
    same = first[:, None] == first[None, :]
    np.fill_diagonal(same, False)
    other = ~same
    np.fill_diagonal(other, False)
    assert sim[same].mean() > 2 * sim[other].mean()
    users = ml100k_like.users
    assert list(users.columns) == ["age", "gender", "occupation", "zip_code"]
    assert len(users) == 943


def test_same_seed_same_data_other_seed_differs():
    a, b = generate(SMALL, seed=3), generate(SMALL, seed=3)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)
    c = generate(SMALL, seed=4)
    assert not a.ratings.equals(c.ratings)
    assert not a.items["text"].equals(c.items["text"])
    # the seed argument overrides spec.seed; the spec's own seed is the default
    d = generate(dataclasses.replace(SMALL, seed=3))
    pd.testing.assert_frame_equal(a.ratings, d.ratings)


def test_same_bytes_as_recorded():
    """Guards 'same bytes on every run and platform' (numpy PCG64 streams, fixed algorithms).

    If this fails after a numpy/numba upgrade, the generator's streams changed: every
    synthetic benchmark input changed with them, so record the new digest deliberately.
    """
    r = generate(SMALL, seed=0).ratings
    digest = hashlib.sha256()
    for col in r.columns:
        digest.update(np.ascontiguousarray(r[col].to_numpy()).tobytes())
    assert digest.hexdigest()[:16] == "975c218dba1c0cf3"


@pytest.mark.parametrize(
    "spec",
    [
        SyntheticSpec(n_users=30, n_items=40, n_ratings=1_100),  # nearly dense
        SyntheticSpec(n_users=25, n_items=40, n_ratings=1_000),  # every cell
        SyntheticSpec(n_users=50, n_items=500, n_ratings=5_000, popularity_exponent=3.0),
        SyntheticSpec(n_users=40, n_items=60, n_ratings=800, popularity_exponent=0.0),
        SyntheticSpec(n_users=1, n_items=1, n_ratings=1, min_per_user=1),
    ],
    ids=["nearly-dense", "dense", "steep", "flat", "one"],
)
def test_extreme_specs_keep_invariants(spec):
    check_invariants(generate(spec), spec)


@settings(max_examples=25, deadline=None)
@given(
    n_users=st.integers(1, 40),
    n_items=st.integers(1, 60),
    density=st.floats(0.0, 1.0),
    min_per_user=st.integers(1, 20),
    exponent=st.floats(0.0, 3.0),
    sigma=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**32),
)
def test_random_specs_keep_invariants(
    n_users, n_items, density, min_per_user, exponent, sigma, seed
):
    min_per_user = min(min_per_user, n_items)
    lo, hi = n_users * min_per_user, n_users * n_items
    spec = SyntheticSpec(
        n_users=n_users,
        n_items=n_items,
        n_ratings=lo + round(density * (hi - lo)),
        min_per_user=min_per_user,
        popularity_exponent=exponent,
        activity_sigma=sigma,
        seed=seed,
    )
    check_invariants(generate(spec), spec)


def test_popularity_exponent_controls_skew():
    def top_share(a):
        spec = dataclasses.replace(SMALL, popularity_exponent=a)
        counts = np.sort(generate(spec).items["vote_count"].to_numpy())[::-1]
        return counts[: len(counts) // 10].sum() / counts.sum()

    flat, steep = top_share(0.0), top_share(1.2)
    assert flat < 0.2 < 0.3 < steep


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_users": -5}, "n_users"),
        ({"n_items": 0}, "n_items"),
        ({"n_ratings": -1}, "n_ratings"),
        ({"n_ratings": 10 * 10 + 1, "n_users": 10, "n_items": 10, "min_per_user": 1}, "n_ratings"),
        ({"n_users": 100, "n_ratings": 1_000}, "min_per_user"),
        ({"n_items": 10, "min_per_user": 11, "n_ratings": 10}, "min_per_user"),
        ({"popularity_exponent": -0.5}, "popularity_exponent"),
        ({"activity_sigma": float("nan")}, "activity_sigma"),
        ({"popularity_exponent": 11.0}, "popularity_exponent"),
        ({"max_user_share": 1.5}, "max_user_share"),
        ({"t_start": 100, "t_end": 50}, "t_end"),
        ({"words": (10, 5)}, "words"),
    ],
)
def test_bad_spec_names_the_field(kwargs, field):
    base = {"n_users": 10, "n_items": 50, "n_ratings": 300}
    with pytest.raises(ValueError, match=field):
        SyntheticSpec(**{**base, **kwargs})


def test_non_integer_sizes_are_type_errors():
    with pytest.raises(TypeError, match="n_ratings"):
        SyntheticSpec(n_users=10, n_items=50, n_ratings=300.0)
    with pytest.raises(TypeError, match="n_users"):
        SyntheticSpec(n_users=True, n_items=50, n_ratings=300)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        generate(SMALL, seed=-1)


# -- documents --------------------------------------------------------------------------------
def test_synthetic_documents_schema_and_determinism():
    docs = synthetic_documents(300, seed=1)
    assert list(docs.columns) == ["id", "description"]
    assert docs["id"].tolist() == list(range(1, 301))
    body = docs["description"].str.split(" - ", n=1).str[1]
    assert body.str.split().str.len().between(60, 240).all()
    pd.testing.assert_frame_equal(docs, synthetic_documents(300, seed=1))
    assert not docs.equals(synthetic_documents(300, seed=2))
    assert len(synthetic_documents(0)) == 0
    short = synthetic_documents(10, n_words=(5, 5))
    assert (short["description"].str.split(" - ", n=1).str[1].str.split().str.len() == 5).all()


def test_documents_vocabulary_grows_with_corpus():
    def vocab(n):
        return len(set(" ".join(synthetic_documents(n)["description"]).lower().split()))

    assert vocab(2_000) > 1.5 * vocab(200)


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_synthetic_documents_bad_count(bad):
    with pytest.raises(ValueError, match="n_docs"):
        synthetic_documents(bad)


def test_synthetic_documents_bad_lengths():
    with pytest.raises(ValueError, match="n_words"):
        synthetic_documents(5, n_words=(0, 3))


# -- writers ------------------------------------------------------------------------------------
def test_ml100k_files_format(tmp_path):
    inter = generate(SMALL)
    write_ml100k_format(inter, tmp_path / "ml")
    d = tmp_path / "ml"
    data = (d / "u.data").read_text().splitlines()
    assert len(data) == SMALL.n_ratings
    assert all(len(line.split("\t")) == 4 for line in data)
    first = inter.ratings.iloc[0].astype(np.int64)
    assert data[0] == f"{first.user_id}\t{first.item_id}\t{first.rating}\t{first.timestamp}"
    item_lines = (d / "u.item").read_bytes().decode("latin-1").splitlines()
    assert len(item_lines) == SMALL.n_items
    fields = [line.split("|") for line in item_lines]
    assert {len(f) for f in fields} == {24}
    assert all(set(f[5:]) <= {"0", "1"} and "1" in f[5:] for f in fields)
    genre = (d / "u.genre").read_text().splitlines()
    assert genre[:2] == ["unknown|0", "Action|1"] and genre[18] == "Western|18"
    users = (d / "u.user").read_text().splitlines()
    assert len(users) == SMALL.n_users and all(len(u.split("|")) == 5 for u in users)
    assert (d / "u.info").read_text().splitlines()[2] == f"{SMALL.n_ratings} ratings"


def test_ml100k_round_trip(tmp_path):
    from recsys_fast.data import load_ml100k

    inter = generate(SMALL)
    back = load_ml100k(write_ml100k_format(inter, tmp_path))
    pd.testing.assert_frame_equal(back.ratings, inter.ratings, check_dtype=False)
    assert back.items["title"].tolist() == inter.items["title"].tolist()
    assert back.items["genres"].tolist() == inter.items["genres"].tolist()
    pd.testing.assert_frame_equal(back.users, inter.users, check_dtype=False)


def _tiny(rating=4.0, title="A Film (1990)", genres="Drama"):
    from recsys_fast.data import make_items_frame, make_ratings_frame

    return Interactions(
        ratings=make_ratings_frame([1, 1], [1, 2], [4.0, rating], [10, 20]),
        items=make_items_frame([1, 2], ["B (1991)", title], ["Comedy", genres], ["x", "y"]),
        name="tiny",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating": 3.5}, r"row 1 has rating 3\.5"),
        ({"rating": 0.0}, "row 1"),
        ({"title": "Bad | Title"}, "item 2 title"),
        ({"title": "Żółw (1990)"}, "not latin-1"),
        ({"genres": "Drama|Cyberpunk"}, r"item 2 has genres \['Cyberpunk'\]"),
    ],
)
def test_ml100k_writer_rejects_what_the_format_cannot_hold(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_ml100k_format(_tiny(**kwargs), tmp_path)
    assert not (tmp_path / "u.data").exists()  # checked before anything is written


def test_ml100k_writer_unknown_item(tmp_path):
    inter = _tiny()
    inter.items = inter.items.iloc[:1]
    with pytest.raises(ValueError, match=r"missing from the items table: \[2\]"):
        write_ml100k_format(inter, tmp_path)


def test_retail_csv_round_trip(tmp_path):
    from recsys_fast.data import load_retail

    docs = synthetic_documents(40, seed=5)
    path = write_retail_csv(docs, tmp_path / "sample-data.csv")
    assert path.read_bytes().startswith(b"id,description\n1,")
    pd.testing.assert_frame_equal(pd.read_csv(path), docs)
    items = load_retail(path)
    assert items["text"].tolist() == docs["description"].tolist()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"id": [1, 2]}), "lacks columns"),
        (pd.DataFrame({"id": [1, 1], "description": ["a", "b"]}), "id 1 repeats"),
        (pd.DataFrame({"id": [1, 2], "description": ["a", " "]}), "id 2"),
        (pd.DataFrame({"id": [0, 2], "description": ["a", "b"]}), "positive integers"),
    ],
)
def test_retail_writer_bad_frames(tmp_path, frame, message):
    with pytest.raises(ValueError, match=message):
        write_retail_csv(frame, tmp_path / "x.csv")


# -- shapes: the laws that set the work ---------------------------------------------------------


def _work(inter):
    """(pair multiply-adds of item-item top-k, top-1 % item share, largest user's count)."""
    w = inter.work()
    counts = np.bincount(inter.user_idx, minlength=inter.n_users)
    return w["pair_madds_item_item"] / 2, w["top1pct_item_share"], int(counts.max())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_generates_the_scale_exactly(shape):
    from recsys_fast.data import generate, shaped

    spec = shaped("100k", shape)
    inter = generate(spec)
    assert (inter.n_ratings, inter.n_users) == (spec.n_ratings, spec.n_users)
    assert inter.n_items == spec.n_items
    counts = np.bincount(inter.user_idx)
    assert counts.min() >= spec.min_per_user
    assert inter.meta["spec"]["name"].endswith(shape) or shape == "default"


def test_shapes_move_the_work_the_way_their_laws_say():
    from recsys_fast.data import generate, shaped

    base = _work(generate(shaped("100k")))
    flat, steep = _work(generate(shaped("100k", "flat"))), _work(generate(shaped("100k", "steep")))
    head = _work(generate(shaped("100k", "mandelbrot")))
    heavy = _work(generate(shaped("100k", "pareto-users")))
    assert flat[1] < base[1] < steep[1]  # popularity exponent: the head's share
    assert head[1] < base[1]  # a Zipf-Mandelbrot offset flattens the head
    assert flat[0] < base[0]  # flatter activity: fewer pair multiply-adds
    assert heavy[2] >= base[2]  # a Pareto tail: heavier heaviest users


def test_bad_shape_and_knob_values_are_refused():
    from recsys_fast.data import SyntheticSpec, shaped

    with pytest.raises(ValueError, match="unknown synthetic shape 'wide'; valid: default"):
        shaped("100k", "wide")
    with pytest.raises(ValueError, match="activity_tail must be 0"):
        SyntheticSpec(10, 10, 50, min_per_user=1, activity_tail=0.2)
    with pytest.raises(ValueError, match="popularity_offset must be a number"):
        SyntheticSpec(10, 10, 50, min_per_user=1, popularity_offset=-1.0)


@pytest.mark.parametrize("dataset, shape", [("ml-100k", "ml-100k-fit"),
                                            ("ml-latest-small", "latest-small-fit"),
                                            ("movies-ratings-small", "ratings-small-fit")])
def test_the_fitted_shapes_show_the_real_sets_laws(dataset, shape):
    """Generated at the real set's sizes, a fitted shape shows the real set's popularity slope
    and activity spread (within 5 %) and its fewest ratings per user."""
    import dataclasses

    from conftest import real_path

    from recsys_fast.data import SyntheticSpec, catalogue, generate
    from recsys_fast.data.synthetic import SHAPES

    spec = catalogue.get_spec(dataset)
    real = catalogue.load(dataset, real_path(spec.folder))
    base = SyntheticSpec(real.n_users, real.n_items, real.n_ratings)
    want, got = real.laws(), generate(dataclasses.replace(base, **SHAPES[shape])).laws()
    for law in ("popularity_exponent", "activity_sigma"):
        assert got[law] == pytest.approx(want[law], rel=0.05), law
    assert got["min_per_user"] == want["min_per_user"]


def test_laws_of_a_generated_set_follow_its_nominal_laws():
    from recsys_fast.data import generate, shaped

    flat, steep = generate(shaped("100k", "flat")).laws(), generate(shaped("100k", "steep")).laws()
    assert flat["popularity_exponent"] < steep["popularity_exponent"]
    assert flat["activity_sigma"] < steep["activity_sigma"]
    assert flat["min_per_user"] >= 20 and 0 < flat["max_user_share"] <= 1
