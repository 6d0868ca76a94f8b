"""Every bad-input case raises a specific exception naming the file and the physical line."""

from __future__ import annotations

import warnings

import pytest

from recsys_fast.data import (
    load_ml100k,
    load_ml100k_split,
    load_movielens,
    load_movies_metadata,
    load_retail,
    load_tmdb5000,
)
from recsys_fast.errors import DataFormatError, DatasetNotFoundError

FLAGS = "|".join(["0"] * 19)
GOOD_DATA = "1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t4\t102\n"


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def ml100k(folder, data=GOOD_DATA, item=None, user=None):
    write(folder / "u.item", item if item is not None else
          f"1|A (1995)|01-Jan-1995||http://x|{FLAGS}\n2|B (1996)|01-Jan-1996||http://y|{FLAGS}\n")
    write(folder / "u.user", user if user is not None else "1|24|M|technician|85711\n2|53|F|other|1\n")
    write(folder / "u.data", data)
    return folder


def expect_line(exc_info, path, line: int, *words: str) -> str:
    """The error names ``path`` and ``line`` (attribute and message) and the given words."""
    err = exc_info.value
    msg = str(err)
    assert err.path == str(path), msg
    assert err.line == line, msg
    assert f"{path}, line {line}:" in msg
    for w in words:
        assert w in msg, msg
    return msg


# -- u.data (tab separated) --------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, line, words",
    [
        ("1\t1\t5\t100\n1\t2\t3\t101\t9\n", 2, ["expected 4 fields", "found 5"]),
        ("1\t1\t5\t100\n1\t2\t3\n", 2, ["expected 4 fields", "found 3"]),
        ("1\t1\t5\t100\n1\t2\tx\t101\n", 2, ["'rating' is not a number", "'x'"]),
        ("1\t1\t5\t100\n1.5\t2\t3\t101\n", 2, ["'user_id' is not an integer"]),
        ("1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t6\t102\n", 3, ["rating '6'", "1..5 in integers"]),
        ("1\t1\t0\t100\n", 1, ["rating '0'"]),
        ("1\t1\t5\t100\n1\t2\t3.5\t101\n", 2, ["rating '3.5'"]),
        ("1\t1\t5\t100\n1\t2\t\t101\n", 2, ["'rating' is empty"]),
        ("1\t1\t5\t100\n1\t2\tNA\t101\n", 2, ["'rating' is not a number", "'NA'"]),
        ("1\t1\t5\t100\n\n1\t2\t3\t101\n", 2, ["blank line"]),
        ("1\t1\t5\t100\n0\t2\t3\t101\n", 2, ["'user_id' must be >= 1"]),
        ("1\t1\t5\t100\n1\t1:2\t3\t101\n", 2, ["'item_id' is not an integer"]),
        ("1\t1\t5\t100\n2\t1\t4\tabc\n", 2, ["'timestamp' is not an integer"]),
    ],
)
def test_u_data_bad_lines(tmp_path, data, line, words):
    folder = ml100k(tmp_path, data)
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.data", line, *words)


def test_u_data_empty(tmp_path):
    folder = ml100k(tmp_path, "")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.data", 1, "empty")


def test_unknown_item_and_user(tmp_path):
    folder = ml100k(tmp_path, GOOD_DATA + "1\t7\t3\t103\n")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.data", 4, "item_id 7 is not in", "u.item")
    folder = ml100k(tmp_path, GOOD_DATA + "9\t1\t3\t103\n")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.data", 4, "user_id 9 is not in", "u.user")


def test_duplicates_error_names_both_lines(tmp_path):
    folder = ml100k(tmp_path, GOOD_DATA + "2\t2\t1\t103\n1\t2\t5\t104\n")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.data", 5, "(user_id=1, item_id=2)", "lines 2 and 5",
                "duplicates='last'")
    with pytest.raises(ValueError, match="duplicates='first'"):
        load_ml100k(folder, duplicates="first")


def test_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere: does not exist"):
        load_ml100k(tmp_path / "nowhere")
    folder = ml100k(tmp_path)
    (folder / "u.data").unlink()
    with pytest.raises(DatasetNotFoundError, match="u.data: does not exist"):
        load_ml100k(folder)
    (folder / "u.item").unlink()
    with pytest.raises(DatasetNotFoundError, match="u.item: does not exist; expected u.item"):
        load_ml100k(folder)
    with pytest.raises(DatasetNotFoundError, match="ua.base: does not exist"):
        load_ml100k_split(ml100k(tmp_path), "ua")
    with pytest.raises(ValueError, match="split='u9'"):
        load_ml100k_split(tmp_path, "u9")
    with pytest.raises(DatasetNotFoundError, match="no MovieLens ratings file"):
        load_movielens(write(tmp_path / "other" / "x.txt", "").parent)


@pytest.mark.parametrize(
    "item, line, words",
    [
        (f"1|A|d||u|{FLAGS}\n2|B|d||u|{FLAGS[2:]}\n", 2, ["expected 24 fields", "found 23"]),
        (f"1|A|d||u|{FLAGS}\n2|B|d||u|{FLAGS[:-1]}2\n", 2, ["genre flags must be 0 or 1"]),
        (f"1|A|d||u|{FLAGS}\nx|B|d||u|{FLAGS}\n", 2, ["item id is not a positive integer", "'x'"]),
        (f"1|A|d||u|{FLAGS}\n2|B|d||u|{FLAGS}\n1|C|d||u|{FLAGS}\n", 3,
         ["item id 1 appears twice, on lines 1 and 3"]),
    ],
)
def test_u_item_bad_lines(tmp_path, item, line, words):
    folder = ml100k(tmp_path, item=item)
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.item", line, *words)


def test_u_user_and_u_genre_bad_lines(tmp_path):
    folder = ml100k(tmp_path, user="1|24|M|technician|85711\n2|old|F|other|1\n")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.user", 2, "age is not an integer")
    folder = ml100k(tmp_path)
    write(folder / "u.genre", "unknown|0\nAction\n")
    with pytest.raises(DataFormatError) as exc:
        load_ml100k(folder)
    expect_line(exc, folder / "u.genre", 2, "expected 'name|index'")


# -- ratings.csv / movies.csv ------------------------------------------------------------------
def csv_folder(tmp_path, ratings: str | bytes, movies: str | bytes | None = None):
    write(tmp_path / "ratings.csv", ratings)
    write(tmp_path / "movies.csv", movies if movies is not None else
          'movieId,title,genres\n1,A,Drama\n2,"B, The",Comedy\n')
    return tmp_path


HEADER = "userId,movieId,rating,timestamp\n"


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("1,1,4.0,1\n1,2,5.5,2\n", 3, ["rating '5.5'", "0.5..5 in steps of 0.5"]),
        ("1,1,4.0,1\n1,2,0.25,2\n", 3, ["rating '0.25'"]),
        ("1,1,4.0,1\n1,2,4.0,2,7\n", 3, ["expected 4 fields", "found 5"]),
        ("1,1,4.0,1\n1,2,,2\n", 3, ["'rating' is empty"]),
        ("1,1,4.0,1\n1,2,four,2\n", 3, ["'rating' is not a number"]),
        ("1,1,4.0,1\n1,3,4.0,2\n", 3, ["item_id 3 is not in", "movies.csv"]),
        ("1,1,4.0,1\n2,2,1.0,2\n1,1,3.0,3\n", 4, ["lines 2 and 4"]),
    ],
)
def test_ratings_csv_bad_lines(tmp_path, body, line, words):
    folder = csv_folder(tmp_path, HEADER + body)
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "ratings.csv", line, *words)


def test_ratings_csv_not_utf8(tmp_path):
    folder = csv_folder(tmp_path, (HEADER + "1,1,4.0,1\n1,2,4.0,2\xe9\n").encode("latin-1"))
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "ratings.csv", 3, "not valid UTF-8", "0xe9")


def test_ratings_csv_header_problems(tmp_path):
    folder = csv_folder(tmp_path, "userId,movieId,timestamp\n1,1,1\n")
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "ratings.csv", 1, "missing column(s) ['rating']")
    folder = csv_folder(tmp_path, HEADER)
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "ratings.csv", 1, "header only")
    folder = csv_folder(tmp_path, "")
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "ratings.csv", 1, "empty")


def test_movies_csv_bad(tmp_path):
    # A quoted title spanning two physical lines: the bad id after it is on line 4, not 3.
    movies = 'movieId,title,genres\n1,"A\nsequel",Drama\nx,B,Comedy\n'
    folder = csv_folder(tmp_path, HEADER + "1,1,4.0,1\n", movies)
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "movies.csv", 4, "movieId is not a positive integer", "'x'")
    folder = csv_folder(tmp_path, HEADER + "1,1,4.0,1\n", "movieId,title,genres\n1,A,D\n1,B,C\n")
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "movies.csv", 3, "appears twice, on lines 2 and 3")
    folder = csv_folder(tmp_path, HEADER + "1,1,4.0,1\n", "movieId,title\n1,A\n")
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "movies.csv", 1, "missing column(s) ['genres']")
    folder = csv_folder(tmp_path, HEADER + "1,1,4.0,1\n",
                        "movieId,title,genres\n1,Caf\xe9,Drama\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as exc:
        load_movielens(folder)
    expect_line(exc, folder / "movies.csv", 2, "not valid UTF-8")
    (folder / "movies.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="movies.csv: does not exist"):
        load_movielens(folder)


# -- ratings.dat (1M / 10M) -----------------------------------------------------------------------
def test_dat_bad_lines(tmp_path):
    write(tmp_path / "movies.dat", "10::A (1995)::Drama\n")
    write(tmp_path / "users.dat", "1::F::1::10::48067\n")
    write(tmp_path / "ratings.dat", "1::10::5::1\n1::10::4.5::2\n")
    with pytest.raises(DataFormatError) as exc:  # 1M (users.dat present): whole stars only
        load_movielens(tmp_path)
    expect_line(exc, tmp_path / "ratings.dat", 2, "rating '4.5'", "1..5 in integers")
    cases = [("1:10::4::2", "expected 4 fields separated by '::'"),
             ("1::10::4::2::9", "found 5"),
             ("1::10::4::2::", "found 5"),
             ("1:x:10::4::2", "found 3"),
             ("1::10:::4::2", "'rating' is not a number: ':4'")]
    for bad, words in cases:
        write(tmp_path / "ratings.dat", f"1::10::5::1\n{bad}\n1::10::5::1\n")
        with pytest.raises(DataFormatError) as exc:
            load_movielens(tmp_path)
        expect_line(exc, tmp_path / "ratings.dat", 2, words)
    write(tmp_path / "ratings.dat", "1::10::5::1\n")
    write(tmp_path / "movies.dat", "10::A (1995)::Drama\n11::B (1995)\n")
    with pytest.raises(DataFormatError) as exc:
        load_movielens(tmp_path)
    expect_line(exc, tmp_path / "movies.dat", 2, "expected 3 fields")


# -- metadata files -----------------------------------------------------------------------------
META_HEADER = "adult,id,title,genres,overview,vote_average,vote_count,release_date\n"
GENRES = "\"[{'id': 16, 'name': 'Animation'}, {'id': 35, 'name': 'Comedy'}]\""


def movies_metadata(tmp_path):
    rows = [
        f"False,862,Toy Story,{GENRES},Led by Woody,7.7,5415.0,1995-10-30",  # line 2
        'False,8844,Jumanji,[],"When siblings\nfind a game",6.9,2413.0,1995-12-15',  # lines 3-4
        "False,15602,Broken,[], - Written by someone",  # line 5: too few fields
        f" - Written by Ørnås,1997-08-20,X,{GENRES},o,6.0,1.0,d",  # line 6: date as id
        "False,31357,Waiting,[],o,6.1,,1995-12-22",  # line 7: no vote_count
        "False,862,Toy Story again,[],o,7.7,5415.0,1995-10-30",  # line 8: repeated id
        "False,11862,Father,[{oops,o,5.7,173.0,1995-02-10",  # line 9: bad genres
        "False,949,Heat,[],,7.7,1886.0,1995-12-15",  # line 10: no overview (kept, text "")
    ]
    return write(tmp_path / "movies_metadata.csv", META_HEADER + "\n".join(rows) + "\n")


def test_movies_metadata_rejects_and_reports(tmp_path):
    path = movies_metadata(tmp_path)
    with pytest.warns(UserWarning, match="left out 5 malformed or repeated row"):
        items = load_movies_metadata(tmp_path)
    assert list(items.index) == [862, 8844, 949]
    assert items.loc[862, "genres"] == "Animation|Comedy"
    assert items.loc[8844, "text"] == "When siblings\nfind a game"
    assert items.loc[949, "text"] == "" and items.loc[862, "vote_count"] == 5415
    rejected = items.attrs["rejected_rows"]
    assert items.attrs["n_rejected"] == len(rejected) == 5
    assert [r["line"] for r in rejected] == [5, 6, 7, 8, 9]
    reasons = " | ".join(r["reason"] for r in rejected)
    for w in ["expected 8 fields, found 5", "id is not a positive integer: '1997-08-20'",
              "vote_count", "id 862 repeated (first on line 2)", "genres is not a list"]:
        assert w in reasons
    with pytest.raises(DataFormatError) as exc:
        load_movies_metadata(path, strict=True)
    expect_line(exc, path, 5, "expected 8 fields")


def test_movies_metadata_missing_column_and_file(tmp_path):
    path = write(tmp_path / "movies_metadata.csv", "id,title,genres\n1,A,[]\n")
    with pytest.raises(DataFormatError) as exc:
        load_movies_metadata(path)
    expect_line(exc, path, 1, "missing column(s) ['overview', 'vote_average', 'vote_count']")
    with pytest.raises(DatasetNotFoundError, match="expected movies_metadata.csv"):
        load_movies_metadata(tmp_path / "sub")


def test_tmdb_is_strict(tmp_path):
    head = "budget,genres,id,overview,title,vote_average,vote_count\n"
    good = '1,"[{""id"": 28, ""name"": ""Action""}]",19995,Pandora,Avatar,7.2,11800\n'
    path = write(tmp_path / "tmdb_5000_movies.csv", head + good + "2,[],285,o,P,6.9,many\n")
    with pytest.raises(DataFormatError) as exc:
        load_tmdb5000(tmp_path)
    expect_line(exc, path, 3, "vote_count is not a non-negative integer", "'many'")
    write(path, head + good + "2,[],19995,o,P,6.9,3\n")
    with pytest.raises(DataFormatError) as exc:
        load_tmdb5000(path)
    expect_line(exc, path, 3, "id 19995 repeated (first on line 2)")
    write(path, head + good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items = load_tmdb5000(path)
    assert items.loc[19995, "genres"] == "Action"


def test_retail_bad(tmp_path):
    path = write(tmp_path / "sample-data.csv", 'id,description\n1,"A - b"\n2,C - d\n1,E\n')
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 4, "id 1 repeated (first on line 2)")
    write(path, "id,description\n1,A - b\n2,\n")
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 3, "description of id 2 is empty")
    write(path, "id,description\n1,A - b\n2,x,y\n")
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 3, "expected 2 fields, found 3")
    write(path, "id,description\n1,A - b\n\n2,x\n")
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 3, "blank line")
    write(path, "id,description\n1,Caf\xe9 - b\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 2, "not valid UTF-8")
    write(path, "")
    with pytest.raises(DataFormatError) as exc:
        load_retail(path)
    expect_line(exc, path, 1, "empty")
    with pytest.raises(DatasetNotFoundError, match="expected sample-data.csv"):
        load_retail(tmp_path / "missing.csv")
