"""The ``dask`` backend's implementations: the row-block kernels on a ``dask.distributed`` cluster.

``cosine_topk/optimised/dask``: ``cosine_topk(X, 50, backend="dask")`` on the same items x users
matrix as the in-process ``cosine_topk/optimised/cpu`` case (same group, so dask vs CPU is a
same-run ratio), checked as that family checks (sampled rows vs exact float64, tie-aware). At
the out-of-core scales ``100m`` and ``1b`` the ratings stay in a Parquet folder
(``recsys_fast.data.parquet``, written to ``$RECSYS_FAST_DATA/synthetic-parquet/`` on first use)
and the timed call is :func:`~recsys_fast.kernels.outofcore.cosine_topk_parquet` on it: X is
never built; 300 sampled rows are checked against exact float64 similarities computed out of
core (:func:`~recsys_fast.kernels.outofcore.cosine_rows_parquet`), and ``extra`` records the
call's files, blocks, tasks, bytes and pair multiply-adds (``out_of_core``).

``cf_fixed_recommend/optimised/dask``: the ``cf_fixed_recommend`` case (``FixedCF("item", 50)``,
top-10 for up to 2,000 users) with ``backend="dask"``: the fit's neighbour search and the timed
``recommend`` run on the cluster; checked as the CPU case.

``tfidf_topk/optimised/dask``: ``tfidf_topk(docs, k=99, backend="dask")`` on the scale's
synthetic catalogue, as the in-process ``tfidf_topk/optimised/cpu`` case (same group): the
vectoriser runs here, the top-k by row blocks on the cluster; checked as that family checks
(against the naive lists, or sampled items vs exact float64).

The cluster is the one :func:`recsys_fast.dask_backend.dask_client` picks
(``$RECSYS_FAST_DASK_SCHEDULER``, set by ``recsys-fast bench --scheduler``, else a LocalCluster
of one single-threaded worker process per core): opened in setup, used by every call of the
case, closed by ``teardown`` (or when the state is dropped, for the asv suites). Each row records
where it ran (scheduler address or ``LocalCluster``, workers, threads and memory limit per
worker) and the workers' peak resident memory after the checked call.

These families delegate the check and work model to the in-process families' classes rather
than subclassing them, so those families' implementation lists stay their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import (
    casedata,
    impls_content,
    impls_fixed_cf,
    impls_knn_rank,
    impls_similarity,
)
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import ALL_SCALES, OUT_OF_CORE_SCALES, SCALES
from recsys_fast.harness.cases.casedata import F32

REQUIRES = ("dask", "distributed")
K = impls_similarity.K


def _worker_peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


@dataclass
class Cluster:
    """An open client (and the cluster it started, if any); ``close()`` ends both."""

    client: Any
    info: dict
    close: Any

    @classmethod
    def open(cls) -> Cluster:
        from recsys_fast.dask_backend import dask_client, last_cluster
        from recsys_fast.kernels import warmup

        stack = contextlib.ExitStack()
        client = stack.enter_context(dask_client())
        out = cls(client, last_cluster(), stack.close)
        try:
            warmup()  # numba compiled (or loaded) here and cached on disk for the workers
            client.run(warmup)  # the workers load it before the timed calls
        except BaseException:
            stack.close()
            raise
        return out

    def extra(self) -> dict:
        info = self.info
        peaks = self.client.run(_worker_peak_rss)
        return {"scheduler": "LocalCluster" if info["source"] == "LocalCluster"
                else info["scheduler"], "cluster_source": info["source"],
                "n_workers": info["n_workers"], "threads_per_worker": info["worker_threads"],
                "worker_memory_limit_bytes": info["worker_memory"],
                "worker_peak_rss_bytes": [int(peaks[a]) for a in sorted(peaks)]}


def _with_cluster(setup):
    """``setup(cluster)`` with a cluster open; it is closed if setup fails or when ``state``
    (what setup returns) is garbage collected without ``teardown``."""
    cluster = Cluster.open()
    try:
        st = setup(cluster)
    except BaseException:
        cluster.close()
        raise
    weakref.finalize(st, cluster.close)
    return st


class DaskAdapter(Adapter):
    """What every dask-backend adapter shares: its requirement, its backend, and a state with
    an open :class:`Cluster` (``st.cluster``), closed by ``teardown`` and described in ``extra``."""

    requires = REQUIRES
    backends = ("dask",)

    def teardown(self, st) -> None:
        st.cluster.close()

    def extra(self, st, result) -> dict:
        return st.cluster.extra()


# -- cosine_topk ----------------------------------------------------------------------------
def parquet_folder(ctx, scale: str):
    """The scale's synthetic Parquet folder (seed ``ctx.seed``), written on first use."""
    from recsys_fast.data.download import cache_dir
    from recsys_fast.data.parquet import spec_for, write_synthetic_parquet

    spec = dataclasses.replace(spec_for(scale), seed=ctx.seed)
    folder = cache_dir() / "synthetic-parquet" / f"{scale}-seed{ctx.seed}"
    meta = folder / "_synthetic.json"
    want = json.loads(json.dumps(dataclasses.asdict(spec)))  # as the writer stores it
    written = json.loads(meta.read_text()) if meta.is_file() else {}
    if not (written.get("spec") == want and written.get("complete", True) is True):
        write_synthetic_parquet(spec, folder)
    return folder


@dataclass
class DaskTopKState(impls_similarity.TopKState):
    cluster: Any = None
    last_result: Any = None  # the latest call's TopKResult (OutOfCoreResult out of core)
    folder: Any = None  # out-of-core scales: the Parquet folder; X is never built


class DaskTopKImpl(DaskAdapter):
    """``cosine_topk`` on a dask cluster; check and work model as :class:`TopKImpl`'s."""

    kernel = impls_similarity.TopKImpl.kernel
    description = impls_similarity.TopKImpl.description
    flops_dtype = "float32"
    as_reference_form = impls_similarity.TopKImpl.as_reference_form

    def setup(self, ctx, scale: str) -> DaskTopKState:
        def build(cluster: Cluster) -> DaskTopKState:
            if scale in OUT_OF_CORE_SCALES:  # out of core: the workers read the folder
                folder = parquet_folder(ctx, scale)
                ctx.data_sources[scale] = (f"synthetic {scale} Parquet folder {folder.name} "
                                           "(recsys_fast.data.parquet, stream mode)")
                return DaskTopKState(ctx, scale, None, k=K, threads=casedata.threads(),
                                     cluster=cluster, folder=folder)
            X = casedata.item_user_csr(ctx, scale, np.float32)
            return DaskTopKState(ctx, scale, X, k=min(K, X.shape[0] - 1),
                                 threads=casedata.threads(), input=X, cluster=cluster)

        return _with_cluster(build)

    def check(self, ctx, st: DaskTopKState, result):
        if st.folder is None:
            return impls_similarity.TopKImpl.check(self, ctx, st, result)
        from recsys_fast.harness.cases.checks import compare_topk, sample_rows
        from recsys_fast.kernels.outofcore import cosine_rows_parquet

        rows = sample_rows(result.shape[0], impls_similarity.N_SAMPLE_TOPK)
        exact = cosine_rows_parquet(st.folder, rows, client=st.cluster.client)
        return compare_topk(result, exact, rows, st.k, include_self=False,
                            tol=impls_similarity.TOPK_TOL,
                            against=f"{len(rows)} sampled rows vs exact float64 (out of core)")

    def flops(self, st: DaskTopKState) -> float:
        if st.folder is None:
            return impls_similarity.TopKImpl.flops(self, st)
        return 2.0 * st.last_result.stats["gram_pair_madds"]  # as gram_flops counts

    def bytes(self, st: DaskTopKState) -> float:
        if st.folder is None:
            return impls_similarity.TopKImpl.bytes(self, st)
        s = st.last_result.stats  # Parquet read twice, the prepared files once per block
        return float(s["parquet_bytes_on_disk"] * s["parquet_passes"]
                     + s["bytes_read_prepared"])

    def extra(self, st: DaskTopKState, result) -> dict:
        out = impls_similarity.TopKImpl.extra(self, st, result)
        last = st.last_result
        if st.folder is not None:
            out["out_of_core"] = dict(last.stats) if last is not None else {}
            return {**out, **st.cluster.extra()}
        if last is not None and last.tasks:
            out["dask_tasks"] = list(last.tasks)
        if last is not None and last.timing:
            out["dask_transport"] = last.timing["transport"]
        return {**out, **st.cluster.extra()}

    def memory_estimate(self, spec, n_workers: int | None = None) -> int:
        """Bytes on this machine. In memory: X, its normalised copy and the output here, plus,
        for a LocalCluster, each worker's scattered copy with its relabelled CSR and CSC. Out of
        core (``100m``, ``1b``): the candidates and the exact rows of the check here, plus, for
        a LocalCluster, each worker's block accumulators (:data:`outofcore.BLOCK_SHARE` of
        the memory the workers share) and one Parquet part with its prepared CSR.
        ``n_workers``: local worker processes (default one per core; none when
        ``$RECSYS_FAST_DASK_SCHEDULER`` names a cluster elsewhere)."""
        import os

        from recsys_fast.dask_backend import SCHEDULER_ENV

        if n_workers is None:
            n_workers = 0 if os.environ.get(SCHEDULER_ENV, "").strip() else casedata.threads()
        if spec.name.removeprefix("synthetic-") in OUT_OF_CORE_SCALES:
            from recsys_fast.data.parquet import DEFAULT_PARTITION_USERS
            from recsys_fast.kernels import outofcore
            from recsys_fast.memory import available_bytes

            per_part = spec.n_ratings * min(1.0, DEFAULT_PARTITION_USERS / spec.n_users)
            blocks = outofcore.BLOCKS_PER_THREAD * max(n_workers, 1)
            here = (spec.n_items * K * 24 * (blocks + 1)
                    + 2 * impls_similarity.N_SAMPLE_TOPK * spec.n_items * 8 + (64 << 20))
            workers = (outofcore.BLOCK_SHARE * available_bytes() + n_workers * 48 * per_part
                       if n_workers else 0)
            return int(here + workers)
        csr = spec.n_ratings * (F32 + 4)
        here = 2 * csr + spec.n_items * (K + 1) * 12 + (64 << 20)
        return int(here + n_workers * 3 * csr)


class OptimisedDaskTopK(DaskTopKImpl):
    name = role = "optimised"
    scales = ALL_SCALES
    note = "cosine_topk(backend='dask'): row blocks as tasks on a dask cluster"

    def run(self, st: DaskTopKState):
        if st.folder is not None:
            from recsys_fast.kernels.outofcore import cosine_topk_parquet

            st.last_result = cosine_topk_parquet(st.folder, st.k, client=st.cluster.client)
            return st.last_result.matrix
        from recsys_fast.kernels import cosine_topk_result

        with st.cluster.client.as_current():  # backend="dask" finds the case's client
            st.last_result = cosine_topk_result(st.input, st.k, backend="dask")
        return st.last_result.matrix


# -- FixedCF recommend ------------------------------------------------------------------------
@dataclass
class DaskRecommendState(impls_fixed_cf.RecommendState):
    cluster: Any = None


class DaskRecommendImpl(DaskAdapter):
    """``FixedCF(backend="dask")`` recommendations; check as the in-process optimised case."""

    kernel = impls_fixed_cf.RecommendImpl.kernel
    description = impls_fixed_cf.RecommendImpl.description
    scales = SCALES
    examples = impls_fixed_cf.RecommendImpl.examples
    check = impls_fixed_cf.OptimisedRecommend.check
    memory_estimate = impls_fixed_cf.OptimisedRecommend.memory_estimate

    def setup(self, ctx, scale: str) -> DaskRecommendState:
        from recsys_fast.harness.cases.checks import sample_rows
        from recsys_fast.kernels import FixedCF

        def build(cluster: Cluster) -> DaskRecommendState:
            R = casedata.train_csr(ctx, scale, np.float32)
            st = DaskRecommendState(ctx, scale, R, sample_rows(R.shape[0],
                                                               impls_fixed_cf.N_USERS),
                                    cluster=cluster)
            with cluster.client.as_current():  # the fit's neighbour search runs there too
                st.model = FixedCF("item", k=impls_fixed_cf.K_NEIGHBOURS,
                                   backend="dask").fit(R)
            return st

        return _with_cluster(build)


class OptimisedDaskRecommend(DaskRecommendImpl):
    name = role = "optimised"
    note = "FixedCF(backend='dask').recommend by user ranges on a dask cluster"

    def run(self, st: DaskRecommendState):
        with st.cluster.client.as_current():
            return st.model.recommend(st.users, impls_fixed_cf.N_RECOMMEND)


# -- item-kNN ranking -------------------------------------------------------------------------
@dataclass
class DaskKnnState(impls_knn_rank.KnnState):
    cluster: Any = None


class DaskKnnRecommendImpl(DaskAdapter):
    """``ItemKNN(backend="dask")`` recommendations; check as the in-process case's."""

    kernel = impls_knn_rank.KnnRecommendImpl.kernel
    description = impls_knn_rank.KnnRecommendImpl.description
    scales = SCALES
    roof = impls_knn_rank.KnnRecommendImpl.roof
    examples = impls_knn_rank.KnnRecommendImpl.examples
    flops = impls_knn_rank.KnnRecommendImpl.flops
    check = impls_knn_rank.KnnRecommendImpl.check
    memory_estimate = impls_knn_rank.KnnRecommendImpl.memory_estimate

    def setup(self, ctx, scale: str) -> DaskKnnState:
        from recsys_fast.harness.cases.checks import sample_rows
        from recsys_fast.kernels import ItemKNN

        def build(cluster: Cluster) -> DaskKnnState:
            R = casedata.train_csr(ctx, scale, np.float32)
            st = DaskKnnState(ctx, scale, R, sample_rows(R.shape[0], impls_knn_rank.N_USERS),
                              cluster=cluster)
            with cluster.client.as_current():  # the fit's neighbour search runs there too
                st.model = ItemKNN(impls_knn_rank.K_NEIGHBOURS, "cosine",
                                   backend="dask").fit(R)
            st.similarity = st.model.similarity_.astype(np.float64).tocsr()
            return st

        return _with_cluster(build)


class OptimisedDaskKnnRecommend(DaskKnnRecommendImpl):
    name = role = "optimised"
    note = "ItemKNN(50, 'cosine', backend='dask').recommend by user ranges on a dask cluster"

    def run(self, st: DaskKnnState):
        with st.cluster.client.as_current():
            return st.model.recommend(st.users, impls_knn_rank.N_RECOMMEND)


# -- TF-IDF content neighbours ---------------------------------------------------------------
@dataclass
class DaskDocsState(impls_content.DocsState):
    cluster: Any = None


class DaskTfidfImpl(DaskAdapter):
    """``tfidf_topk(backend="dask")``; check and work model as :class:`TextNeighboursImpl`'s."""

    kernel = impls_content.TextNeighboursImpl.kernel
    description = impls_content.TextNeighboursImpl.description
    results = impls_content.TextNeighboursImpl.results
    check = impls_content.TextNeighboursImpl.check
    examples = impls_content.TextNeighboursImpl.examples
    memory_estimate = impls_content.TextNeighboursImpl.memory_estimate

    def setup(self, ctx, scale: str) -> DaskDocsState:
        def build(cluster: Cluster) -> DaskDocsState:
            return DaskDocsState(scale, casedata.documents(ctx, scale), cluster=cluster)

        return _with_cluster(build)

    def extra(self, st: DaskDocsState, result) -> dict:
        return {**impls_content.TextNeighboursImpl.extra(self, st, result), **st.cluster.extra()}


class OptimisedDaskTfidf(DaskTfidfImpl):
    name = role = "optimised"
    note = "kernels.tfidf_topk(backend='dask'): vectoriser here, top-k row blocks on a dask cluster"

    def run(self, st: DaskDocsState):
        from recsys_fast.kernels import tfidf_topk

        with st.cluster.client.as_current():  # backend="dask" finds the case's client
            return tfidf_topk(st.docs, k=impls_content.K, backend="dask")


FAMILIES = (DaskTopKImpl, DaskRecommendImpl, DaskKnnRecommendImpl, DaskTfidfImpl)
