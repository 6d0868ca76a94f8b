"""fetch() checks the extracted files, re-extracts from a verified archive, keeps what it
replaces: a changed folder and a corrupt archive are moved aside, never deleted."""

from __future__ import annotations

import json

import pytest
from test_download import closed_port, serve, tiny_ml100k_zip, tiny_spec  # noqa: F401

from recsys_fast.data import fetch, get_spec, load
from recsys_fast.data.download import check_cached_folder, extracted_changes
from recsys_fast.errors import DatasetMismatchError, DownloadError


@pytest.fixture
def fetched(tmp_path, serve):  # noqa: F811
    """(spec, cache) after one fetch of the tiny archive from a server that is then gone."""
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    spec = tiny_spec(sha, size, serve(src) + "tiny.zip")
    cache = tmp_path / "c"
    fetch(spec, cache=cache, progress=False)
    (src / "tiny.zip").unlink()
    return spec, cache


def test_extraction_records_sizes_and_hashes(fetched):
    spec, cache = fetched
    record = json.loads((cache / "archives" / "ml-100k.extracted.json").read_text())
    assert set(record["files"]) == {"u.data", "u.item"}
    assert record["files"]["u.data"]["size"] == (cache / "ml-100k" / "u.data").stat().st_size
    assert extracted_changes(spec, cache) == []


def test_tampered_folder_is_moved_aside_and_extracted_again(fetched, capsys):
    spec, cache = fetched
    u_data = cache / "ml-100k" / "u.data"
    good = u_data.read_bytes()
    u_data.write_bytes(good.replace(b"\t5\t", b"\t1\t"))  # same size, other content
    (cache / "ml-100k" / "extra.txt").write_text("mine")
    assert extracted_changes(spec, cache) == ["extra.txt", "u.data"]
    res = fetch(spec, cache=cache, progress=True)
    err = capsys.readouterr().err
    assert res.used_cache and u_data.read_bytes() == good
    assert "changed since it was extracted" in err and "u.data" in err
    aside = [p for p in cache.iterdir() if p.name.startswith("ml-100k.changed-")]
    assert len(aside) == 1 and (aside[0] / "extra.txt").read_text() == "mine"
    assert extracted_changes(spec, cache) == []


def test_loading_from_the_cache_checks_the_folder(tmp_path, serve, shared_archives):  # noqa: F811
    base = serve(shared_archives)
    fetch("ml-latest-small", cache=tmp_path, url=base + "ml-latest-small.zip", progress=False)
    ratings = tmp_path / "ml-latest-small" / "ratings.csv"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[:100]))  # tampered: fewer ratings
    d = load("ml-latest-small", cache=tmp_path)  # restored from the verified archive
    assert d.n_ratings == 100836
    assert any(p.name.startswith("ml-latest-small.changed-") for p in tmp_path.iterdir())
    # without a verified archive the change is an error, not a silent load
    ratings.write_text("".join(lines[:100]))
    (tmp_path / "archives" / "ml-latest-small.zip").unlink()
    with pytest.raises(DatasetMismatchError, match="changed since they were extracted"):
        check_cached_folder(get_spec("ml-latest-small"), tmp_path, progress=False)


def test_corrupt_archive_is_kept_aside_when_offline(fetched):
    spec, cache = fetched
    archive = cache / "archives" / "tiny.zip"
    archive.write_bytes(b"corrupt")
    data_before = (cache / "ml-100k" / "u.data").read_bytes()
    offline = tiny_spec(spec.sha256, spec.size, f"http://127.0.0.1:{closed_port()}/tiny.zip")
    with pytest.raises(DownloadError, match="could not download"):
        fetch(offline, cache=cache, progress=False, timeout=5)
    aside = cache / "archives" / "tiny.zip.corrupt"
    assert aside.read_bytes() == b"corrupt"  # moved aside, not deleted
    assert (cache / "ml-100k" / "u.data").read_bytes() == data_before  # data untouched
