"""Download a data set archive once, verify its size and SHA-256, and unzip it into a cache.

The archive is streamed to a temporary file next to its final place, hashed on the way, and
renamed only once it matches, so a crash or a bad download never leaves a file that looks
good. A second :func:`fetch` finds the verified archive and does not download again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from recsys_fast.errors import DownloadError

if TYPE_CHECKING:
    from recsys_fast.data.catalogue import DatasetSpec

ENV_DATA = "RECSYS_FAST_DATA"
CHUNK = 1 << 20
SYNTHETIC_HINT = (
    "synthetic data of the same shape (data set names synthetic-100k, synthetic-1m, "
    "synthetic-10m, synthetic-25m)"
)


@dataclass(frozen=True)
class FetchResult:
    """Where a fetched data set lies and how it got there."""

    path: Path  # the unzipped data folder, ready for ``load(name, path=...)``
    used_cache: bool  # True when the verified archive was already cached (no download)
    sha256: str  # SHA-256 of the archive
    archive: Path | None = None
    url: str | None = None
    verified: bool = True  # False only for ``verify=False`` on an entry with no checksum
    message: str = ""

    def __str__(self) -> str:
        return self.message or f"{self.path} (sha256 {self.sha256})"


def cache_dir() -> Path:
    """Folder where downloads are kept.

    ``$RECSYS_FAST_DATA`` when set; else ``datasets/`` in the source checkout when running
    from one (the folder next to the ``recsys_fast`` package, git-ignored); else
    ``~/.cache/recsys_fast``.
    """
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() or (root / "datasets").is_dir():
        return root / "datasets"
    return Path.home() / ".cache" / "recsys_fast"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    name: str | DatasetSpec,
    *,
    cache: str | Path | None = None,
    url: str | None = None,
    force: bool = False,
    progress: bool = True,
    verify: bool = True,
    timeout: float = 60.0,
) -> FetchResult:
    """Download (or find cached) and unzip a catalogued data set.

    Parameters
    ----------
    name : a catalogue name (see :func:`recsys_fast.data.catalogue.list_datasets`) or a
        :class:`~recsys_fast.data.catalogue.DatasetSpec`.
    cache : cache folder; default :func:`cache_dir`.
    url : download from here instead of the catalogue's URL (same checksum expected).
    force : download and unzip again even when a verified archive is cached.
    progress : show a progress bar and say what happens (on stderr).
    verify : refuse entries that have no published checksum (ml-10m) unless False; with
        False the SHA-256 got is still computed and reported.
    timeout : seconds to wait for the server.

    Raises
    ------
    DownloadError
        No network / server error (the message names the alternatives: ``--path DIR`` or
        synthetic data), checksum or size mismatch (the bad file is removed), a bad zip, or
        an entry with no direct download.
    """
    from recsys_fast.data.catalogue import get_spec

    spec = get_spec(name) if isinstance(name, str) else name
    src = url or spec.url
    if not src:
        raise DownloadError(
            f"{spec.name} has no direct download: {spec.note} Then load it with --path DIR "
            f"(recsys_fast.data.load({spec.name!r}, path=DIR)), or use {SYNTHETIC_HINT}."
        )
    if verify and not spec.sha256:
        raise DownloadError(
            f"{spec.name}: no published SHA-256 for {src}, so the download cannot be verified; "
            "pass verify=False (CLI: --no-verify) to download it anyway (the SHA-256 got is "
            "reported), or load a copy you trust with --path DIR."
        )
    root = Path(cache) if cache is not None else cache_dir()
    archives = root / "archives"
    try:
        archives.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the cache folder {archives}: {exc}; set {ENV_DATA} to a writable folder"
        ) from exc
    archive = archives / spec.filename
    data_dir = root / spec.folder
    say = _say if progress else _quiet

    used_cache = False
    if archive.is_file() and not force:
        got = sha256_file(archive)
        if _matches(spec, archive, got) or not spec.sha256:
            used_cache = True
            say(f"{spec.name}: using the cached archive {archive} (SHA-256 {got[:12]}... "
                f"{'verified' if spec.sha256 else 'not verifiable'}); not downloading")
        else:
            say(f"{spec.name}: cached archive {archive} does not match the expected "
                "checksum; downloading it again")
            archive.unlink()
    if not used_cache:
        say(f"{spec.name}: downloading {src}")
        got = _download(spec, src, archive, progress=progress, timeout=timeout, verify=verify)
    if force or not data_dir.is_dir():
        _extract(archive, root, spec.folder)
        say(f"{spec.name}: unzipped into {data_dir}")
    verified = bool(spec.sha256)
    msg = (f"{spec.name}: {'cached' if used_cache else 'downloaded'} archive {archive}, "
           f"SHA-256 {got} ({'verified' if verified else 'NOT verified: no published checksum'}); "
           f"data in {data_dir}")
    return FetchResult(data_dir, used_cache, got, archive, src, verified, msg)


def _matches(spec: DatasetSpec, archive: Path, got: str) -> bool:
    size_ok = spec.size is None or archive.stat().st_size == spec.size
    return size_ok and got == spec.sha256


def _download(
    spec: DatasetSpec, url: str, archive: Path, *, progress: bool, timeout: float, verify: bool
) -> str:
    from tqdm.auto import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "recsys-fast"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(_offline_message(spec, url, exc)) from exc
    fd, tmp_name = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".part")
    tmp = Path(tmp_name)
    h, n = hashlib.sha256(), 0
    try:
        with resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or spec.size
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=spec.name, disable=not progress, file=sys.stderr) as bar:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(_offline_message(spec, url, exc)) from exc
    got = h.hexdigest()
    size_bad = spec.size is not None and n != spec.size
    sha_bad = bool(spec.sha256) and verify and got != spec.sha256
    if size_bad or sha_bad:
        tmp.unlink(missing_ok=True)
        raise DownloadError(
            f"{spec.name}: checksum mismatch for {url}: expected SHA-256 {spec.sha256} "
            f"({spec.size if spec.size is not None else '?'} bytes), got {got} ({n} bytes); "
            "the downloaded file was removed. Try again, or load a copy you trust with --path DIR."
        )
    os.replace(tmp, archive)  # atomic: the archive appears only once verified
    return got


def _offline_message(spec: DatasetSpec, url: str, exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        reason: object = f"HTTP {exc.code} ({exc.reason})"
    else:
        reason = getattr(exc, "reason", None) or exc
    return (
        f"could not download {spec.name} from {url}: {reason}. Alternatives: load a local "
        f"copy with --path DIR (recsys_fast.data.load({spec.name!r}, path=DIR)), or use "
        f"{SYNTHETIC_HINT}."
    )


def _extract(archive: Path, root: Path, folder: str) -> None:
    """Unzip ``folder/`` from ``archive`` into ``root/folder`` via a temporary folder."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive} is not a valid zip archive: {exc}") from exc
    with zf:
        names = zf.namelist()
        for n in names:
            p = PurePosixPath(n)
            if p.is_absolute() or ".." in p.parts:
                raise DownloadError(f"{archive}: refusing to unzip unsafe member name {n!r}")
        if not any(n.startswith(folder + "/") for n in names):
            tops = sorted({PurePosixPath(n).parts[0] for n in names if n})
            raise DownloadError(f"{archive} has no folder {folder}/ (top-level entries: {tops})")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
        try:
            zf.extractall(tmp)
            target = root / folder
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / folder, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _quiet(msg: str) -> None:
    pass
