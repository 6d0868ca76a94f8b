"""Arrays handed to dask workers on this machine through shared memory instead of a scatter.

A broadcast scatter pickles an array, sends it over the network and has every worker process
unpickle its own copy. On a LocalCluster that is one copy per worker of the same bytes, made
while the workers wait. Where the workers see this machine's files, the client instead writes
each array once as an ``.npy`` file in a shared-memory folder and every worker maps the files
(``numpy.load(mmap_mode="c")``): one physical copy in the page cache, no pickling, no transfer.

The folder is ``$RECSYS_FAST_SHM_DIR`` when set, else ``/dev/shm`` where it is writable, else
the temporary directory. :meth:`SharedArrays.visible_to` asks every worker to read a random
token from the folder, so workers on other machines (which cannot see it) are detected and the
caller scatters instead. The folder is removed when the ``with`` block ends; folders left by a
process that was killed are removed by the next :class:`SharedArrays` of this machine (a
folder is named by host and process id, and only this host's folders of processes that no
longer run are removed: containers that share ``/dev/shm`` have their own hostnames).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from recsys_fast.memory import available_cores

ROOT_ENV = "RECSYS_FAST_SHM_DIR"
PREFIX = "recsys-fast-shm-"

_mapped: dict[str, dict[str, np.ndarray]] = {}  # worker side: token -> name -> mapped array


class SharedSpaceError(OSError):
    """The shared-memory folder has no room for the arrays (the caller scatters instead)."""


def shm_root() -> Path:
    """Where shared arrays are written (see the module notes)."""
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def folder_prefix(pid: int | None = None) -> str:
    """``recsys-fast-shm-<host>-<pid>-``: the start of this process's folder names."""
    return f"{PREFIX}{_host()}-{os.getpid() if pid is None else int(pid)}-"


def sweep_stale(root: Path) -> list[Path]:
    """Remove the folders under ``root`` that this host's processes wrote and that no longer
    run; return them."""
    gone = []
    stale = re.compile(re.escape(f"{PREFIX}{_host()}-") + r"(\d+)-")
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = stale.match(entry.name)
            if match and entry.is_dir() and not _alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                gone.append(entry)
    return gone


class SharedArrays:
    """Named arrays written once by the client and mapped, read-only in effect, by workers.

    Pickles as its folder path, token and names only. Use as a context manager on the client;
    :meth:`arrays` on a worker returns the mapped arrays (mapped once per worker process).
    Mapped copy-on-write, the arrays are writeable as numba expects, but the kernels only read.
    """

    def __init__(self, root: Path | str | None = None):
        root = Path(root) if root is not None else shm_root()
        root.mkdir(parents=True, exist_ok=True)
        sweep_stale(root)
        self.path = tempfile.mkdtemp(prefix=folder_prefix(), dir=root)
        self.token = uuid.uuid4().hex
        self.names: tuple[str, ...] = ()
        Path(self.path, "token").write_text(self.token)

    def __getstate__(self):
        return {"path": self.path, "token": self.token, "names": self.names}

    def __enter__(self) -> SharedArrays:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, arrays: dict[str, np.ndarray]) -> None:
        """Write ``arrays`` (name -> array) into the folder.

        Raises
        ------
        SharedSpaceError
            The folder's file system has less free space than the arrays need (plus 10 %).
        """
        need = sum(int(np.asarray(a).nbytes) for a in arrays.values())
        free = shutil.disk_usage(self.path).free
        if need * 1.1 > free:
            raise SharedSpaceError(f"{need / 2**20:.0f} MiB of shared arrays do not fit in the "
                                   f"{free / 2**20:.0f} MiB free under {self.path}")
        def write(item):
            name, a = item
            np.save(os.path.join(self.path, f"{name}.npy"), np.ascontiguousarray(a))

        # the copies into the page cache release the GIL: one writer thread per core
        with ThreadPoolExecutor(max(1, min(len(arrays), available_cores()))) as pool:
            list(pool.map(write, arrays.items()))
        self.names = self.names + tuple(arrays)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays, mapped from the folder (once per process; see :meth:`forget`)."""
        got = _mapped.get(self.token)
        if got is None:
            got = {name: np.asarray(np.load(os.path.join(self.path, f"{name}.npy"),
                                            mmap_mode="c"))
                   for name in self.names}
            _mapped[self.token] = got
        return got

    def visible_to(self, client: Any) -> bool:
        """Whether every worker of ``client`` reads this folder's token (same machine or a
        shared file system)."""
        seen = client.run(_sees, self.path, self.token)
        return bool(seen) and all(seen.values())

    def release(self, client: Any) -> None:
        """Workers drop their mappings (the memory goes once the folder is removed)."""
        with contextlib.suppress(Exception):
            client.run(_forget, self.token)
        _forget(self.token)

    def close(self) -> None:
        """Remove the folder (mappings still open keep their pages until dropped)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _sees(path: str, token: str) -> bool:
    try:
        return Path(path, "token").read_text() == token
    except OSError:
        return False


def _forget(token: str) -> None:
    _mapped.pop(token, None)
