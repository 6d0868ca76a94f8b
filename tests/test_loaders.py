"""Loaders on the real files (skipped when absent) and on small handmade files of each format."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from recsys_fast.data import (
    DATASETS,
    Interactions,
    cache_dir,
    info,
    list_datasets,
    load,
    load_ml100k,
    load_ml100k_split,
    load_movielens,
    load_retail,
    load_tmdb5000,
)
from recsys_fast.data.movielens import ML100K_SPLITS


# -- real data ------------------------------------------------------------------------------
def test_ml100k_real(ml100k_dir):
    d = load_ml100k(ml100k_dir)
    assert isinstance(d, Interactions)
    assert (d.n_users, d.n_items, d.n_ratings) == (943, 1682, 100000)
    assert d.name == "ml-100k" and d.n_duplicates_overwritten == 0
    assert len(d.items) == 1682 and len(d.users) == 943
    assert d.items.loc[1, "title"] == "Toy Story (1995)"
    assert d.items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert d.items.loc[543, "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert (d.items["text"] == "").all()
    assert d.users.loc[1].tolist() == [24, "M", "technician", "85711"]
    assert d.ratings["rating"].dtype == np.float32
    assert d.summary()["rating_histogram"] == {1.0: 6110, 2.0: 11370, 3.0: 27145,
                                               4.0: 34174, 5.0: 21201}
    # first line of u.data: 196 242 3 881250949
    assert d.ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]


def test_ml100k_splits_real(ml100k_dir):
    train, test = load_ml100k_split(ml100k_dir, "ua")
    assert (train.n_ratings, test.n_ratings) == (90570, 9430)
    assert train.items is test.items
    assert (test.ratings.groupby("user_id").size() == 10).all()
    for split in ML100K_SPLITS[2:]:
        tr, te = load_ml100k_split(ml100k_dir, split)
        assert (tr.n_ratings, te.n_ratings) == (80000, 20000)


def test_load_movielens_detects_100k(ml100k_dir):
    d = load_movielens(ml100k_dir)
    assert d.name == "ml-100k" and d.n_ratings == 100000
    assert load_movielens(ml100k_dir / "ua.test").n_ratings == 9430


def test_ml_latest_small_real(ml_latest_small_dir):
    d = load_movielens(ml_latest_small_dir)
    assert (d.n_users, d.n_items, d.n_ratings) == (610, 9724, 100836)
    assert d.name == "ml-latest-small"
    assert len(d.items) == 9742
    assert set(d.summary()["rating_histogram"]) == {x / 2 for x in range(1, 11)}
    assert d.items.loc[1, "genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    assert d.ratings.iloc[0].tolist() == [1, 1, 4.0, 964982703]


def test_tmdb_real(tmdb_csv):
    items = load_tmdb5000(tmdb_csv)
    assert len(items) == 4803 and items.index.is_unique
    assert items["vote_count"].dtype == np.int64
    assert items.loc[19995, "title"] == "Avatar"
    assert items.loc[19995, "genres"] == "Action|Adventure|Fantasy|Science Fiction"
    assert items.loc[19995, "vote_count"] == 11800
    assert items.attrs["n_rejected"] == 0
    assert (items["text"] == "").sum() == 3  # three movies have no overview


def test_retail_real(retail_csv):
    items = load_retail(retail_csv)
    assert len(items) == 500 and 11 in items.index
    assert list(items.index[:3]) == [1, 2, 3]
    assert items.loc[1, "title"] == "Active classic boxers"
    assert items.loc[1, "text"].startswith("Active classic boxers - There's a reason")
    assert load_retail(retail_csv.parent).equals(items)  # folder or file


def test_catalogue_load_and_info(ml100k_dir, tmdb_csv):
    assert load("ml-100k", path=ml100k_dir).n_ratings == 100000
    i = info("ml-100k", path=ml100k_dir)
    assert (i["users"], i["items"], i["ratings"]) == (943, 1682, 100000)
    assert i["density"] == pytest.approx(100000 / (943 * 1682))
    t = info("tmdb-5000", path=tmdb_csv.parent)
    assert t["items"] == 4803 and t["with_text"] == 4800


def test_catalogue_checksums_match_official_file(shared_archives):
    tsv = pd.read_csv(shared_archives.parent / "OFFICIAL_CHECKSUMS.tsv", sep="\t")
    for row in tsv.itertuples():
        spec = DATASETS[row.file.removesuffix(".zip")]
        assert (spec.url, spec.size, spec.sha256) == (row.url, row.bytes, row.sha256)


# -- handmade files of each format ---------------------------------------------------------------
def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def make_ml100k(folder, data="1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t4\t102\n"):
    flags = "|".join(["0"] * 19)
    items = (f"1|Café (1995)|01-Jan-1995||http://x|{flags}\n"
             f"2|B (1996)|01-Jan-1996||http://y|0|1|1{'|0' * 16}\n")
    write(folder / "u.item", items.encode("latin-1"))
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    write(folder / "u.data", data)
    return folder


def test_ml100k_handmade_without_genre_file(tmp_path):
    d = load_ml100k(make_ml100k(tmp_path))
    assert d.items.loc[1, "title"] == "Café (1995)"
    assert d.items.loc[2, "genres"] == "Action|Adventure"  # fixed list when u.genre is absent
    assert d.user_idx.tolist() == [0, 0, 1] and d.item_idx.tolist() == [0, 1, 0]


def test_duplicates_last_matches_itertuples_fill(tmp_path):
    data = "1\t1\t5\t100\n1\t2\t3\t101\n1\t1\t2\t102\n2\t1\t4\t103\n1\t1\t1\t104\n"
    d = load_ml100k(make_ml100k(tmp_path, data), duplicates="last")
    assert d.n_duplicates_overwritten == 2
    dense = np.zeros((2, 2))
    raw = pd.read_csv(tmp_path / "u.data", sep="\t", names=["u", "i", "r", "t"])
    for row in raw.itertuples():  # the course's fill: the last write wins
        dense[row.u - 1, row.i - 1] = row.r
    ours = np.zeros((2, 2))
    ours[d.ratings["user_id"] - 1, d.ratings["item_id"] - 1] = d.ratings["rating"]
    np.testing.assert_array_equal(ours, dense)
    assert d.n_ratings == 3


def test_ml1m_format(tmp_path):
    write(tmp_path / "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    write(tmp_path / "movies.dat",
          "10::Misérables, Les (1995)::Drama|Musical\n20::Toy Story (1995)::Animation\n"
          .encode("latin-1"))
    write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    d = load_movielens(tmp_path)
    assert d.name == "ml-1m" and d.n_ratings == 3 and d.shape == (2, 2)
    assert d.items.loc[10, "title"] == "Misérables, Les (1995)"
    assert d.items.attrs["encoding"] == "latin-1"
    assert d.items.loc[10, "genres"] == "Drama|Musical"
    assert d.users.loc[2, "age"] == 56
    assert d.ratings["timestamp"].tolist() == [978300760, 978302109, 978301968]


def test_ml10m_format_half_stars_utf8(tmp_path):
    write(tmp_path / "ratings.dat", "1::10::4.5::838985046\n2::20::0.5::838983525\n")
    write(tmp_path / "movies.dat", "10::Amélie (2001)::Comedy|Romance\n20::X (1990)::(no genres listed)\n")
    d = load_movielens(tmp_path)
    assert d.name == "ml-10m" and d.users is None
    assert d.ratings["rating"].tolist() == [4.5, 0.5]
    assert d.items.loc[10, "title"] == "Amélie (2001)" and d.items.attrs["encoding"] == "utf-8"
    assert d.items.loc[20, "genres"] == ""


def test_csv_format(tmp_path):
    folder = tmp_path / "ml-25m"
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n"
                                  "1,3,0.5,964981247\r\n7,1,5.0,964982224\r\n")
    write(folder / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n'
                                 '3,"American President, The (1995)",(no genres listed)\n')
    d = load_movielens(folder)
    assert d.name == "ml-25m" and d.shape == (2, 2)
    assert d.items.loc[3, "title"] == "American President, The (1995)"
    assert d.items.loc[3, "genres"] == ""
    assert d.values.tolist() == [4.0, 0.5, 5.0]
    assert load_movielens(folder / "ratings.csv").n_ratings == 3


def test_csv_without_timestamp_and_reordered(tmp_path):
    write(tmp_path / "ratings.csv", "movieId,userId,rating\n1,2,3.5\n")
    write(tmp_path / "movies.csv", "movieId,title,genres\n1,A,Drama\n")
    d = load_movielens(tmp_path)
    assert d.ratings.iloc[0].tolist() == [2, 1, 3.5, 0]


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_FAST_DATA", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["ml-100k"]["path"] == str(tmp_path / "c" / "ml-100k")
    assert not rows["ml-100k"]["cached"]
    assert rows["tmdb-5000"]["verification"] == "local only"
    assert rows["ml-10m"]["sha256"] is None
    monkeypatch.delenv("RECSYS_FAST_DATA")
    assert cache_dir().name in {"datasets", "recsys_fast"}


@pytest.mark.slow
def test_large_csv_is_vectorised(tmp_path, rng):
    """1M rows load in seconds (a Python loop would take far longer) and round-trip exactly."""
    n = 1_000_000
    users = rng.integers(1, 50_000, n)
    items = rng.integers(1, 20_000, n)
    key = users * 20_000 + items
    _, first = np.unique(key, return_index=True)
    first.sort()
    users, items = users[first], items[first]
    ratings = rng.integers(1, 11, len(users)) / 2
    df = pd.DataFrame({"userId": users, "movieId": items, "rating": ratings,
                       "timestamp": np.arange(len(users))})
    df.to_csv(tmp_path / "ratings.csv", index=False, float_format="%.1f")
    ids = np.arange(1, 20_000)
    pd.DataFrame({"movieId": ids, "title": ids.astype(str), "genres": "Drama"}).to_csv(
        tmp_path / "movies.csv", index=False)
    t0 = time.perf_counter()
    d = load_movielens(tmp_path)
    elapsed = time.perf_counter() - t0
    assert d.n_ratings == len(users)
    np.testing.assert_array_equal(d.ratings["user_id"], users)
    np.testing.assert_array_equal(d.values, ratings.astype(np.float32))
    assert elapsed < 30, f"loading {len(users)} rows took {elapsed:.1f} s"


def test_movies_ratings_small_real():
    from conftest import real_path

    from recsys_fast.data import catalogue
    from recsys_fast.data.movielens import load_ratings_small

    folder = real_path("movies-dataset")
    if not (folder / "ratings_small.csv").is_file():
        pytest.skip("ratings_small.csv not in the movies-dataset folder")
    d = catalogue.load("movies-ratings-small", folder)  # the catalogue checks the counts
    assert (d.n_users, d.n_items, d.n_ratings) == (671, 9066, 100_004)
    assert d.ratings["rating"].min() == 0.5 and d.ratings["rating"].max() == 5.0
    same = load_ratings_small(folder / "ratings_small.csv")
    assert same.n_ratings == d.n_ratings


def test_movies_ratings_small_bad_input_names_the_problem(tmp_path):
    from recsys_fast.data.movielens import load_ratings_small
    from recsys_fast.errors import DataFormatError, DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="ratings_small.csv"):
        load_ratings_small(tmp_path)
    f = tmp_path / "ratings_small.csv"
    f.write_text("userId,itemId,rating\n1,2,3.0\n")
    with pytest.raises(DataFormatError, match="missing column"):
        load_ratings_small(f)
    f.write_text("userId,movieId,rating,timestamp\n1,2,3.0,5\n1,2,4.0,6\n")
    with pytest.raises(DataFormatError, match="duplicate"):
        load_ratings_small(f)
    f.write_text("userId,movieId,rating,timestamp\n1,2,nan,5\n")
    with pytest.raises(DataFormatError):
        load_ratings_small(f)


def test_movie_keywords_real():
    from conftest import real_path

    from recsys_fast.data import catalogue

    folder = real_path("movies-dataset")
    if not (folder / "keywords.csv").is_file():
        pytest.skip("keywords.csv not in the movies-dataset folder")
    items = catalogue.load("movie-keywords", folder)
    # 46,419 rows: 31,092 distinct movies with keywords, 987 identical repeats, 14,340 without
    assert len(items) == 31_092 and items.index.is_unique
    assert items.attrs["n_duplicates"] == 987 and items.attrs["n_without_keywords"] == 14_340
    assert (items["text"].str.len() > 0).all()
    assert "jealousy toy boy" in items.loc[862, "text"]


def test_movie_keywords_bad_input_names_the_line(tmp_path):
    from recsys_fast.data.metadata import load_movie_keywords
    from recsys_fast.errors import DataFormatError

    f = tmp_path / "keywords.csv"
    f.write_text("id,keywords\n1,\"[{'id': 5, 'name': 'toy'}]\"\n2,\"[{'id': 6\"\n")
    with pytest.raises(DataFormatError, match="keywords of id 2") as err:
        load_movie_keywords(f)
    assert "line 3" in str(err.value)
    f.write_text("id,keywords\n1,\"[{'id': 5, 'name': 'toy'}]\"\n1,\"[{'id': 6, 'name': 'boy'}]\"\n")
    with pytest.raises(DataFormatError, match="id 1 repeated with other keywords"):
        load_movie_keywords(f)
    f.write_text("id,keywords\n1,\"[{'id': 5, 'name': 'toy'}]\"\n1,\"[{'id': 5, 'name': 'toy'}]\"\n"
                 "2,[]\n")
    items = load_movie_keywords(f)
    assert list(items.index) == [1] and items.attrs == {
        "source": str(f), "n_duplicates": 1, "n_without_keywords": 1}
