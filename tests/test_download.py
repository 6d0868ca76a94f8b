"""fetch() against a local HTTP server on 127.0.0.1: verify, cache, mismatch, no network."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recsys_fast.data import fetch, get_spec, load
from recsys_fast.data.catalogue import DatasetSpec
from recsys_fast.data.movielens import load_ml100k
from recsys_fast.errors import DatasetNotFoundError, DownloadError


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server for that folder; shut down afterwards."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connecting is refused at once
    return port


def tiny_ml100k_zip(folder: Path) -> tuple[Path, str, int]:
    """A zip laid out like ml-100k.zip (ml-100k/u.data, u.item), and its sha256 and size."""
    flags = "|".join(["0"] * 18)
    z = folder / "tiny.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t881250949\n2\t1\t3\t881250950\n")
        zf.writestr("ml-100k/u.item", f"1|Toy Story (1995)|01-Jan-1995||http://x|1|{flags}\n")
    data = z.read_bytes()
    return z, hashlib.sha256(data).hexdigest(), len(data)


def tiny_spec(sha: str, size: int | None, url: str | None = None) -> DatasetSpec:
    return DatasetSpec("tiny", "test archive", load_ml100k, "ml-100k", ("u.data",),
                       url=url, size=size, sha256=sha)


def test_fetch_small_zip_then_cache_hit(tmp_path, serve, capsys):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    base = serve(src)
    cache = tmp_path / "cache"
    spec = tiny_spec(sha, size, base + "tiny.zip")

    first = fetch(spec, cache=cache, progress=False)
    assert not first.used_cache and first.sha256 == sha and first.verified
    assert first.path == cache / "ml-100k" and (first.path / "u.data").is_file()
    assert first.archive == cache / "archives" / "tiny.zip"
    assert load_ml100k(first.path).n_ratings == 2
    assert not list((cache / "archives").glob("*.part"))

    (src / "tiny.zip").unlink()  # a second download would now fail: the cache must answer
    second = fetch(spec, cache=cache, progress=True)
    assert second.used_cache and second.sha256 == sha
    assert "using the cached archive" in capsys.readouterr().err
    assert "cached" in str(second)


def test_fetch_force_extracts_again_from_the_cached_archive(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    spec = tiny_spec(sha, size, serve(src) + "tiny.zip")
    fetch(spec, cache=tmp_path / "c", progress=False)
    (tmp_path / "c" / "ml-100k" / "u.data").unlink()
    (src / "tiny.zip").unlink()  # the network cannot answer: only the cache can
    again = fetch(spec, cache=tmp_path / "c", progress=False, force=True)
    assert again.used_cache and (again.path / "u.data").is_file()


def test_fetch_real_archive_official_checksum(tmp_path, serve, shared_archives, capsys):
    base = serve(shared_archives)
    res = fetch("ml-latest-small", cache=tmp_path, url=base + "ml-latest-small.zip",
                progress=True)
    assert "downloading" in capsys.readouterr().err
    assert res.sha256 == get_spec("ml-latest-small").sha256
    assert res.path == tmp_path / "ml-latest-small" and not res.used_cache
    d = load("ml-latest-small", cache=tmp_path)
    assert (d.n_users, d.n_items, d.n_ratings) == (610, 9724, 100836)
    again = fetch("ml-latest-small", cache=tmp_path, url=base + "missing.zip", progress=False)
    assert again.used_cache  # verified archive cached: the bad URL is never asked


def test_checksum_mismatch_removes_file(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    wrong = "0" * 64
    spec = tiny_spec(wrong, size, serve(src) + "tiny.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as exc:
        fetch(spec, cache=cache, progress=False)
    msg = str(exc.value)
    assert wrong in msg and sha in msg and "removed" in msg
    assert list((cache / "archives").iterdir()) == []  # neither the archive nor a .part file
    assert not (cache / "ml-100k").exists()


def test_size_mismatch(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    spec = tiny_spec(sha, size + 1, serve(src) + "tiny.zip")
    with pytest.raises(DownloadError, match=f"got {sha} \\({size} bytes\\)"):
        fetch(spec, cache=tmp_path / "c", progress=False)


def test_corrupt_cached_archive_is_replaced(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    cache = tmp_path / "c"
    (cache / "archives").mkdir(parents=True)
    (cache / "archives" / "tiny.zip").write_bytes(b"truncated")
    res = fetch(tiny_spec(sha, size, serve(src) + "tiny.zip"), cache=cache, progress=False)
    assert not res.used_cache and res.sha256 == sha
    assert sorted(p.name for p in (cache / "archives").iterdir()) == [
        "ml-100k.extracted.json", "tiny.zip"]  # the corrupt copy went once replaced


def test_unreachable_url_names_alternatives(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/ml-100k.zip"
    with pytest.raises(DownloadError) as exc:
        fetch("ml-100k", cache=tmp_path, url=url, progress=False, timeout=5)
    msg = str(exc.value)
    assert url in msg and "--path DIR" in msg and "synthetic-100k" in msg
    assert list((tmp_path / "archives").iterdir()) == []


def test_http_404(tmp_path, serve):
    base = serve(tmp_path)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("ml-1m", cache=tmp_path / "c", url=base + "nope.zip", progress=False)


def test_not_a_zip(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    data = b"this is not a zip"
    (src / "tiny.zip").write_bytes(data)
    spec = tiny_spec(hashlib.sha256(data).hexdigest(), len(data), serve(src) + "tiny.zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        fetch(spec, cache=tmp_path / "c", progress=False)


def test_zip_without_expected_folder(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    with zipfile.ZipFile(src / "tiny.zip", "w") as zf:
        zf.writestr("other/u.data", "1\t1\t5\t0\n")
    data = (src / "tiny.zip").read_bytes()
    spec = tiny_spec(hashlib.sha256(data).hexdigest(), len(data), serve(src) + "tiny.zip")
    with pytest.raises(DownloadError, match=r"no folder ml-100k/.*other"):
        fetch(spec, cache=tmp_path / "c", progress=False)


def test_unverifiable_entry_needs_no_verify(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, _ = tiny_ml100k_zip(src)
    spec = tiny_spec(None, None, serve(src) + "tiny.zip")
    with pytest.raises(DownloadError, match="--no-verify"):
        fetch(spec, cache=tmp_path / "c", progress=False)
    res = fetch(spec, cache=tmp_path / "c", progress=False, verify=False)
    assert res.sha256 == sha and not res.verified and "NOT verified" in res.message
    with pytest.raises(DownloadError, match="--no-verify"):
        fetch("ml-10m", cache=tmp_path / "c", progress=False)


def test_local_only_entries(tmp_path):
    with pytest.raises(DownloadError, match="Kaggle needs a login.*--path DIR"):
        fetch("tmdb-5000", cache=tmp_path, progress=False)
    with pytest.raises(DatasetNotFoundError, match="Kaggle needs a login.*--path DIR"):
        load("movies-metadata", cache=tmp_path)


def test_load_missing_from_cache_says_how_to_fetch(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        load("ml-1m", cache=tmp_path)
    msg = str(exc.value)
    assert "recsys-fast data fetch ml-1m" in msg and "--path" in msg
    assert str(tmp_path / "ml-1m") in msg
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        load("ml-100k", path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown data set 'ml-2m'"):
        load("ml-2m")


# -- verified means verified ------------------------------------------------------------------
def test_no_verify_is_refused_where_a_checksum_is_published(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    _, sha, size = tiny_ml100k_zip(src)
    spec = tiny_spec(sha, size, serve(src) + "tiny.zip")
    with pytest.raises(DownloadError, match="published SHA-256: it is always verified"):
        fetch(spec, cache=tmp_path / "c", progress=False, verify=False)
    assert not (tmp_path / "c" / "ml-100k").exists()  # refused before any download


def test_a_zip_with_a_bad_crc_is_one_error_and_moved_aside(tmp_path, serve):
    src = tmp_path / "srv"
    src.mkdir()
    z = src / "tiny.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t881250949\n" * 50)
    data = bytearray(z.read_bytes())
    at = data.index(b"881250949")
    data[at] = ord("7")  # a stored byte changed: the member's CRC-32 no longer matches
    z.write_bytes(bytes(data))
    spec = tiny_spec(None, None, serve(src) + "tiny.zip")
    cache = tmp_path / "c"
    with pytest.raises(DownloadError, match="not a valid zip archive.*moved aside"):
        fetch(spec, cache=cache, progress=False, verify=False)
    assert (cache / "archives" / "tiny.zip.corrupt").is_file()
    assert not (cache / "archives" / "tiny.zip").exists() and not (cache / "ml-100k").exists()
    tiny_ml100k_zip(src)  # the server has a good copy now: the next fetch recovers
    assert fetch(spec, cache=cache, progress=False, verify=False).path == cache / "ml-100k"


def test_loaded_data_says_whether_its_files_are_the_verified_release(tmp_path):
    """Content checked on load (release files) or the cache folder of a verified archive:
    verified. ml-10m (no published checksum), or a set with an archive checksum read from
    another folder: unverified, and ``info`` names it so."""
    from recsys_fast.data import catalogue

    ml10m, ml1m, small = get_spec("ml-10m"), get_spec("ml-1m"), get_spec("ml-latest-small")
    cache = tmp_path / "cache"
    (cache / ml1m.folder).mkdir(parents=True)
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    assert small.release_files and catalogue.content_verified(small, elsewhere, cache)
    assert catalogue.content_verified(ml1m, cache / ml1m.folder, cache)
    assert not catalogue.content_verified(ml1m, elsewhere, cache)
    assert not ml10m.sha256 and not catalogue.content_verified(ml10m, cache / ml10m.folder,
                                                                 cache)


def test_info_labels_an_unverified_copy(tmp_path, monkeypatch):
    """An entry without any checksum (as ml-10m) read from a folder in its format: ``info`` and
    ``load`` say unverified. (A folder in ML-100K format without the synth marker stands in:
    ml-10m's size does not fit a test.)"""
    import dataclasses

    from recsys_fast.data import catalogue
    from recsys_fast.data.manifest import SYNTH_MARKER
    from recsys_fast.data.writers import write_synthetic_ml100k

    base = get_spec("ml-100k")
    spec = dataclasses.replace(base, name="ml-100k-copy", sha256=None, release_files=(),
                               counts=None)
    monkeypatch.setitem(catalogue.DATASETS, spec.name, spec)
    from recsys_fast.data.synthetic import TINY, generate

    write_synthetic_ml100k(generate(TINY), tmp_path / "d")
    (tmp_path / "d" / SYNTH_MARKER).unlink()
    out = catalogue.info(spec.name, path=tmp_path / "d")
    assert out["verified"] is False and "unverified" in out["name"]
    inter = catalogue.load(spec.name, path=tmp_path / "d")
    assert inter.meta["verified"] is False
