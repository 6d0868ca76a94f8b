"""Download a data set archive once, verify its size and SHA-256, and unzip it into a cache.

The archive is streamed to a temporary file next to its final place, hashed on the way, and
renamed only once it matches, so a crash or a bad download never leaves a file that looks
good. A second :func:`fetch` finds the verified archive and does not download again.

Extraction records each extracted file's size and SHA-256 in
``archives/<folder>.extracted.json``; :func:`fetch` and loading from the cache check them, and
a folder changed since is moved aside (``<folder>.changed-<time>``, never deleted) and
extracted again from the verified archive. A cached archive that fails its checksum is moved
aside (``<archive>.corrupt``) and removed only once a good download replaces it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from recsys_fast.data.manifest import changed_files, read_manifest, sha256_file, write_json_atomic
from recsys_fast.data.specs import DatasetSpec, get_spec
from recsys_fast.errors import DataFormatError, DatasetMismatchError, DownloadError

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
        :class:`~recsys_fast.data.specs.DatasetSpec`.
    cache : cache folder; default :func:`cache_dir`.
    url : download from here instead of the catalogue's URL (same checksum expected).
    force : unzip again from the cached archive when it verifies (no network); download
        only when no verified archive is cached.
    progress : show a progress bar and say what happens (on stderr).
    verify : refuse entries that have no published checksum (ml-10m) unless False; with
        False the SHA-256 got is still computed and reported.
    timeout : seconds to wait for the server.

    Raises
    ------
    DownloadError
        No network / server error (the message names the alternatives: ``--path DIR`` or
        synthetic data), checksum or size mismatch (the bad download is removed; a bad cached
        archive is kept as ``<archive>.corrupt``), a bad zip, or an entry with no direct
        download.
    """
    spec = get_spec(name) if isinstance(name, str) else name
    src = url or spec.url
    if not src:
        raise DownloadError(
            f"{spec.name} has no direct download: {spec.note} Then load it with --path DIR "
            f"(recsys_fast.data.load({spec.name!r}, path=DIR)), or use {SYNTHETIC_HINT}."
        )
    if not verify and spec.sha256:
        raise DownloadError(
            f"{spec.name} has a published SHA-256: it is always verified (--no-verify applies "
            "only to entries without one, such as ml-10m)"
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
    aside = archive.with_name(archive.name + ".corrupt")
    if archive.is_file():
        got = sha256_file(archive)
        if _matches(spec, archive, got) or not spec.sha256:
            used_cache = True
            say(f"{spec.name}: using the cached archive {archive} (SHA-256 {got[:12]}... "
                f"{'verified' if spec.sha256 else 'not verifiable'}); not downloading")
        else:
            os.replace(archive, aside)
            say(f"{spec.name}: cached archive {archive} does not match the expected checksum; "
                f"moved aside to {aside.name} until a good download replaces it")
    if not used_cache:
        say(f"{spec.name}: downloading {src}")
        got = _download(spec, src, archive, progress=progress, timeout=timeout, verify=verify)
        aside.unlink(missing_ok=True)  # a verified archive has replaced it
    changed = extracted_changes(spec, root, archive)
    if force or changed or not data_dir.is_dir():
        moved = _extract(archive, root, spec.folder, keep_old=bool(changed))
        if moved is not None:
            say(f"{spec.name}: {data_dir} changed since it was extracted "
                f"({_names(changed)}); moved it aside to {moved.name}")
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


def _names(names: list[str], most: int = 5) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _record_path(root: Path, folder: str) -> Path:
    return root / "archives" / f"{folder}.extracted.json"


def _archive_files(zf: zipfile.ZipFile, folder: str) -> dict[str, dict]:
    """Size and SHA-256 of each file under ``folder/`` in the zip, keyed relative to it."""
    out = {}
    for zi in zf.infolist():
        if zi.is_dir() or not zi.filename.startswith(folder + "/"):
            continue
        h = hashlib.sha256()
        with zf.open(zi) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        out[zi.filename[len(folder) + 1:]] = {"size": zi.file_size, "sha256": h.hexdigest()}
    return out


def extracted_changes(spec: DatasetSpec, root: Path, archive: Path | None = None) -> list[str]:
    """Files of the cached folder of ``spec`` that differ from what its archive holds.

    Compares sizes and SHA-256 with the record written at extraction; without a record (a
    folder extracted by an older version) and given a readable ``archive``, with the archive's
    members, recording them when the folder matches. Missing, changed and added files all
    count. Returns ``[]`` when the folder matches or cannot be checked (no record, no archive).
    """
    data_dir = root / spec.folder
    if not data_dir.is_dir():
        return []
    record = _record_path(root, spec.folder)
    try:
        recorded = read_manifest(record)
    except DataFormatError:
        recorded = None
    if recorded is None:
        if archive is None or not archive.is_file():
            return []
        try:
            with zipfile.ZipFile(archive) as zf:
                recorded = {"files": _archive_files(zf, spec.folder)}
        except zipfile.BadZipFile:
            return []
        bad = changed_files(data_dir, recorded["files"])
        if not bad:
            write_json_atomic(record, {"archive": archive.name, **recorded})
        return bad
    return changed_files(data_dir, recorded["files"])


def check_cached_folder(spec: DatasetSpec, root: Path, *, progress: bool = True) -> None:
    """Before loading ``spec`` from the cache: check its extracted files; a folder changed
    since extraction is moved aside and extracted again from the cached archive.

    Raises
    ------
    DatasetMismatchError
        The folder changed and no verified archive is cached to restore it from.
    """
    changed = extracted_changes(spec, root)
    if not changed:
        return
    archive = root / "archives" / spec.filename
    data_dir = root / spec.folder
    if not (archive.is_file() and spec.sha256 and _matches(spec, archive, sha256_file(archive))):
        raise DatasetMismatchError(
            f"{data_dir}: files changed since they were extracted ({_names(changed)}) and no "
            f"verified archive is cached to restore them; run `recsys-fast data fetch {spec.name}`"
        )
    moved = _extract(archive, root, spec.folder, keep_old=True)
    if progress:
        _say(f"{spec.name}: {data_dir} changed since it was extracted ({_names(changed)}); "
             f"moved it aside to {moved.name if moved else '?'} and extracted it again from {archive}")


def _extract(archive: Path, root: Path, folder: str, *, keep_old: bool = False) -> Path | None:
    """Unzip ``folder/`` from ``archive`` into ``root/folder`` via a temporary folder and
    record its files' sizes and SHA-256. An existing ``root/folder`` is moved aside when
    ``keep_old`` (the path it got is returned), else removed (it matched the archive)."""
    try:
        return _extract_checked(archive, root, folder, keep_old)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # not a zip, bad CRC, cut short
        aside = archive.with_name(archive.name + ".corrupt")
        os.replace(archive, aside)
        raise DownloadError(f"{archive} is not a valid zip archive ({exc}); moved aside to "
                            f"{aside.name}: fetch it again") from None


def _extract_checked(archive: Path, root: Path, folder: str, keep_old: bool) -> Path | None:
    zf = zipfile.ZipFile(archive)
    with zf:
        names = zf.namelist()
        for n in names:
            p = PurePosixPath(n)
            if p.is_absolute() or ".." in p.parts:
                raise DownloadError(f"{archive}: refusing to unzip unsafe member name {n!r}")
        if not any(n.startswith(folder + "/") for n in names):
            tops = sorted({PurePosixPath(n).parts[0] for n in names if n})
            raise DownloadError(f"{archive} has no folder {folder}/ (top-level entries: {tops})")
        files = _archive_files(zf, folder)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
        moved = None
        try:
            zf.extractall(tmp)
            target = root / folder
            if target.exists() and keep_old:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                moved = root / f"{folder}.changed-{stamp}"
                n = 1
                while moved.exists():
                    n += 1
                    moved = root / f"{folder}.changed-{stamp}-{n}"
                os.replace(target, moved)
            elif target.exists():
                shutil.rmtree(target)
            os.replace(tmp / folder, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    write_json_atomic(_record_path(root, folder), {"archive": archive.name, "files": files})
    return moved


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _quiet(msg: str) -> None:
    pass
