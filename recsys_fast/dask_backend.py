"""The ``dask`` backend: which ``dask.distributed`` cluster runs the row-block kernels.

:func:`dask_client` picks the cluster, in this order:

1. a ``client`` passed by the caller;
2. the active ``dask.distributed`` Client (``distributed.default_client()``), e.g. one the
   user opened with ``Client("tcp://host:8786")`` or ``Client(LocalCluster(...))``;
3. the scheduler at ``$RECSYS_FAST_DASK_SCHEDULER`` (``tcp://host:port``): a Client is
   connected to that existing cluster and closed afterwards (the cluster keeps running);
4. otherwise a ``LocalCluster`` on this machine (worker processes, one per core, one thread
   each, the memory budget :func:`recsys_fast.memory.available_bytes` shared between them),
   started for the call and closed when it is done.

The LocalCluster's workers are spawned processes: a script that triggers one must guard its
entry point with ``if __name__ == "__main__":`` (as for any ``multiprocessing`` code).

Dask is an optional extra: ``pip install "recsys-fast[dask]"``. Without it the ``dask``
backend raises :class:`~recsys_fast.errors.BackendUnavailableError` naming that command.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from recsys_fast.errors import BackendUnavailableError, ConfigError

NAME = "dask"
SCHEDULER_ENV = "RECSYS_FAST_DASK_SCHEDULER"
INSTALL = 'pip install "recsys-fast[dask]"  (or: pip install "dask[distributed,dataframe]" pyarrow)'

_last_cluster: dict[str, Any] | None = None


def require_dask():
    """Import and return ``distributed``; raise :class:`BackendUnavailableError` without it."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend 'dask' requested but dask.distributed is not installed ({exc}); "
            f"install it with: {INSTALL}"
        ) from exc
    return distributed


_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://([\w.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}/?"
                      r"|inproc://\S+")


def check_address(address: str, what: str = "scheduler address") -> str:
    """``address`` without surrounding blanks if it names a scheduler (``tcp://host:port``).

    Raises
    ------
    ConfigError
        It does not look like ``protocol://host:port``.
    """
    text = str(address).strip()
    if not _ADDRESS.fullmatch(text):
        raise ConfigError(f"{what} {address!r} is not a dask scheduler address like "
                          "tcp://10.0.0.5:8786")
    return text


def last_cluster() -> dict[str, Any] | None:
    """Where the latest dask-backend call ran (see :func:`describe`), None before any call."""
    return None if _last_cluster is None else dict(_last_cluster)


def describe(client: Any, source: str) -> dict[str, Any]:
    """Scheduler address, how the cluster was found, workers, threads and memory per worker.

    ``worker_threads`` and ``worker_memory`` list each worker's threads and memory limit
    (bytes; 0: none) in the order of the workers' addresses; ``worker_memory_limits`` is the
    same limits sorted.

    Parameters
    ----------
    client : distributed.Client
    source : str
        ``"argument"``, ``"active client"``, ``"scheduler address"`` or ``"LocalCluster"``.
    """
    info = client.scheduler_info()
    workers = [w for _, w in sorted(info.get("workers", {}).items())]
    return {
        "source": source,
        "scheduler": info.get("address", str(getattr(client, "scheduler", ""))),
        "n_workers": len(workers),
        "threads": sum(int(w.get("nthreads", 1)) for w in workers),
        "worker_threads": [int(w.get("nthreads", 1)) for w in workers],
        "worker_memory": [int(w.get("memory_limit") or 0) for w in workers],
        "worker_memory_limits": sorted(int(w.get("memory_limit") or 0) for w in workers),
    }


def _local_cluster(distributed):
    from recsys_fast.memory import available_bytes, available_cores

    cores = available_cores()
    return distributed.LocalCluster(
        n_workers=cores,
        threads_per_worker=1,
        processes=True,
        memory_limit=max(1, available_bytes() // cores),
        dashboard_address=":0",
    )


@contextlib.contextmanager
def dask_client(client: Any = None) -> Iterator[Any]:
    """A ``distributed.Client`` for one dask-backend call (see the module notes for the order).

    Clients and clusters this function opens are closed on exit; a client passed in or found
    active is left open.

    Raises
    ------
    BackendUnavailableError
        dask.distributed is not installed.
    """
    global _last_cluster
    distributed = require_dask()
    if client is not None:
        _last_cluster = describe(client, "argument")
        yield client
        return
    try:
        active = distributed.default_client()
    except ValueError:
        active = None
    if active is not None:
        _last_cluster = describe(active, "active client")
        yield active
        return
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if address:
        address = check_address(address, f"${SCHEDULER_ENV}")
        with distributed.Client(address, set_as_default=False) as own:
            _last_cluster = describe(own, "scheduler address")
            yield own
        return
    with _local_cluster(distributed) as cluster, distributed.Client(
        cluster, set_as_default=False
    ) as own:
        _last_cluster = describe(own, "LocalCluster")
        yield own


def worker_memory(client: Any) -> int:
    """The smallest worker memory limit in bytes (the local budget where workers have none)."""
    from recsys_fast.memory import available_bytes

    limits = [int(w.get("memory_limit") or 0)
              for w in client.scheduler_info().get("workers", {}).values()]
    known = [m for m in limits if m > 0]
    return min(known) if known else available_bytes()


def total_threads(client: Any) -> int:
    """Worker threads in the cluster (at least 1)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def map_ranges(client: Any, payload: Any, func, ranges: list[tuple[int, int]], *args,
               sliced: Any = None) -> list:
    """``[func(payload, a, b, *args) for (a, b) in ranges]`` on the cluster, in order.

    ``payload`` is scattered once to every worker (``broadcast=True``); one task per range.
    With ``sliced`` (an array), each task gets ``sliced[a:b]`` as its first extra argument
    (only its own slice travels with it).
    """
    if not ranges:
        return []
    [remote] = client.scatter([payload], broadcast=True, hash=False)
    try:
        futures = [
            client.submit(func, remote, a, b, *(() if sliced is None else (sliced[a:b],)),
                          *args, pure=False)
            for a, b in ranges
        ]
        try:
            return client.gather(futures)
        finally:
            for f in futures:
                f.release()
    finally:
        remote.release()


def even_ranges(n: int, rows: int, align: int = 1) -> list[tuple[int, int]]:
    """``[0, n)`` cut into consecutive ranges of ``rows`` rows (rounded up to ``align``)."""
    rows = max(align, -(-int(rows) // align) * align)
    return [(a, min(n, a + rows)) for a in range(0, n, rows)]
