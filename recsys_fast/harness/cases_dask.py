"""Cases of the ``dask`` backend: the row-block kernels on a ``dask.distributed`` cluster.

``cosine_topk/optimised/dask``: ``cosine_topk(X, 50, backend="dask")`` on the same items x users
matrix as the in-process ``cosine_topk/optimised/cpu`` case (same group, so the dask vs CPU
ratio is a same-run ratio), checked the same way (sampled rows vs exact float64, tie-aware).
At the out-of-core scales ``100m`` and ``1b`` the ratings are read from a Parquet folder
(``recsys-fast data synth SCALE --format parquet``, written to
``$RECSYS_FAST_DATA/synthetic-parquet/`` on first use) and the CSR is built by partition on the
cluster (:func:`~recsys_fast.kernels.distributed.user_item_csr_from_parquet`, in setup).

``cf_fixed_recommend/optimised/dask``: the ``cf_fixed_recommend`` case (``FixedCF("item", 50)``
top-10 for up to 2,000 users) with ``backend="dask"``: the fit's neighbour search and the
timed ``recommend`` run on the cluster; checked as the CPU case (float64 from the model's
neighbours).

The cluster is the one :func:`recsys_fast.dask_backend.dask_client` picks
(``$RECSYS_FAST_DASK_SCHEDULER``, set by ``recsys-fast bench --scheduler``, else a LocalCluster
of one single-threaded worker process per core): opened in setup, used by every call of the
case, closed by ``teardown`` when the case leaves the rotation. Each row records where it ran
(scheduler address or ``LocalCluster``, workers, threads and memory limit per worker) and the
workers' peak resident memory after the checked call.
"""

from __future__ import annotations

import contextlib
import json
import time
import weakref

import numpy as np

from recsys_fast.harness import casedata, cases_fixed_cf, cases_similarity
from recsys_fast.harness.casedata import F32
from recsys_fast.harness.registry import ALL_SCALES, OUT_OF_CORE_SCALES, SCALES, Case, Registry

REQUIRES = ("dask", "distributed")
K = cases_similarity.K


class _State(dict):
    """A case's state; when dropped without ``teardown`` (asv), its cluster is closed too."""


def _worker_peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _open(ctx, scale) -> _State:
    """State with an open cluster (``client``, ``cluster`` info); closed when state is dropped."""
    from recsys_fast.dask_backend import dask_client, last_cluster
    from recsys_fast.kernels import warmup

    stack = contextlib.ExitStack()
    client = stack.enter_context(dask_client())
    st = _State(ctx=ctx, scale=scale, backend="dask", client=client, cluster=last_cluster(),
                threads=cases_similarity._threads())
    st["close"] = weakref.finalize(st, stack.close)
    try:
        warmup()  # numba compiled (or loaded) here and cached on disk for the workers
        client.run(warmup)  # the workers load it before the timed calls
    except BaseException:
        st["close"]()
        raise
    return st


def _teardown(st) -> None:
    st["close"]()


def _cluster_extra(st) -> dict:
    info = st["cluster"]
    peaks = st["client"].run(_worker_peak_rss)
    return {"scheduler": "LocalCluster" if info["source"] == "LocalCluster" else info["scheduler"],
            "cluster_source": info["source"], "n_workers": info["n_workers"],
            "threads_per_worker": info["worker_threads"],
            "worker_memory_limit_bytes": info["worker_memory"],
            "worker_peak_rss_bytes": [int(peaks[a]) for a in sorted(peaks)]}


# -- cosine_topk ----------------------------------------------------------------------------
def parquet_folder(ctx, scale: str):
    """The scale's synthetic Parquet folder (seed ``ctx.seed``), written on first use."""
    import dataclasses

    from recsys_fast.data.download import cache_dir
    from recsys_fast.data.parquet import spec_for, write_synthetic_parquet

    spec = dataclasses.replace(spec_for(scale), seed=ctx.seed)
    folder = cache_dir() / "synthetic-parquet" / f"{scale}-seed{ctx.seed}"
    meta = folder / "_synthetic.json"
    want = json.loads(json.dumps(dataclasses.asdict(spec)))  # as the writer stores it
    if not (meta.is_file() and json.loads(meta.read_text())["spec"] == want):
        write_synthetic_parquet(spec, folder)
    return folder


def _topk_setup(ctx, scale):
    st = _open(ctx, scale)
    try:
        if scale in OUT_OF_CORE_SCALES:
            from recsys_fast.kernels.distributed import user_item_csr_from_parquet

            folder = parquet_folder(ctx, scale)
            t0 = time.perf_counter()
            R, _, _ = user_item_csr_from_parquet(folder, dtype=np.float32, client=st["client"])
            st["csr_from_parquet_s"] = time.perf_counter() - t0
            X = R.T.tocsr()
            del R
            ctx.data_sources[scale] = (f"synthetic {scale} Parquet folder {folder.name} "
                                       "(recsys_fast.data.parquet, stream mode)")
            # the checks and work models of cases_similarity read X from here
            ctx.memo((scale, "item_user_csr", "float32"), lambda: X)
        st["X"] = casedata.item_user_csr(ctx, scale, np.float32)
        st["n"] = st["X"].shape[0]
        st["k"] = cases_similarity._k(st["n"])
        st["impl"] = "optimised"
    except BaseException:
        _teardown(st)
        raise
    return st


def _topk_run(st):
    from recsys_fast.kernels import cosine_topk

    with st["client"].as_current():  # backend="dask" finds the case's client active
        return cosine_topk(st["X"], st["k"], backend="dask")


def _topk_extra(st, result) -> dict:
    out = cases_similarity._topk_extra(st, result)
    tasks = getattr(result, "dask_tasks", None)
    if tasks:
        out["dask_tasks"] = list(tasks)
    if "csr_from_parquet_s" in st:
        out["csr_from_parquet_s"] = st["csr_from_parquet_s"]
    return {**out, **_cluster_extra(st)}


def topk_memory(spec, n_workers: int | None = None) -> int:
    """Bytes on this machine: X, its normalised copy and the output here, plus, for a
    LocalCluster, each worker's scattered copy with its relabelled CSR and CSC.

    At the out-of-core scales the Parquet-built user x item CSR and its transpose count too.
    ``n_workers``: local worker processes (default: one per core, none when
    ``$RECSYS_FAST_DASK_SCHEDULER`` names a remote cluster).
    """
    import os

    from recsys_fast.dask_backend import SCHEDULER_ENV

    if n_workers is None:
        n_workers = 0 if os.environ.get(SCHEDULER_ENV, "").strip() else cases_similarity._threads()
    csr = spec.n_ratings * (F32 + 4)
    here = 2 * csr + spec.n_items * (K + 1) * 12 + (64 << 20)
    if spec.name in OUT_OF_CORE_SCALES:
        here += 2 * csr
    return int(here + n_workers * 3 * csr)


# -- FixedCF recommend ------------------------------------------------------------------------
def _recommend_setup(ctx, scale):
    from recsys_fast.harness.checks import sample_rows
    from recsys_fast.kernels import FixedCF

    st = _open(ctx, scale)
    try:
        R = casedata.train_csr(ctx, scale, np.float32)
        with st["client"].as_current():  # fit's neighbour search runs on the cluster too
            st["model"] = FixedCF("item", k=cases_fixed_cf.K_NEIGHBOURS, backend="dask").fit(R)
        st["users"] = sample_rows(R.shape[0], cases_fixed_cf.N_USERS)  # as the CPU case
    except BaseException:
        _teardown(st)
        raise
    return st


def _recommend_run(st):
    with st["client"].as_current():
        return st["model"].recommend(st["users"], cases_fixed_cf.N_RECOMMEND)


def _recommend_extra(st, result) -> dict:
    return _cluster_extra(st)


def register(reg: Registry) -> None:
    reg.add_kernel("cosine_topk", f"item-item top-{K} true cosine neighbours")
    reg.add(Case(kernel="cosine_topk", impl="optimised", backend="dask", setup=_topk_setup,
                 run=_topk_run, check=cases_similarity._topk_check, teardown=_teardown,
                 memory_estimate=topk_memory, extra=_topk_extra,
                 flops=cases_similarity._topk_flops, bytes=cases_similarity._topk_bytes,
                 flops_dtype="float32", requires=REQUIRES, scales=ALL_SCALES,
                 note="cosine_topk(backend='dask'): row blocks as tasks on a dask cluster"))
    reg.add(Case(kernel=cases_fixed_cf.KERNEL, impl="optimised", backend="dask",
                 setup=_recommend_setup, run=_recommend_run, check=cases_fixed_cf._check,
                 teardown=_teardown, memory_estimate=cases_fixed_cf._mem,
                 examples=lambda st: len(st["users"]), extra=_recommend_extra,
                 requires=REQUIRES, scales=SCALES,
                 note="FixedCF(backend='dask').recommend by user ranges on a dask cluster"))
