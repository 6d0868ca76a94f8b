"""The dask backend: the same results as the single-process kernels, and the cluster choice.

One small LocalCluster (2 worker processes x 1 thread) serves the module; the tests of the
cluster choice start their own and check that nothing is left running.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_fast.errors import BackendUnavailableError
from recsys_fast.kernels import (
    FixedCF,
    build_user_item_csr,
    cosine_topk,
    cosine_topk_result,
    tfidf_topk,
    warmup,
)

PROPS = settings(max_examples=12, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def random_matrix(seed: int, n_rows: int, n_cols: int, density: float, dtype, ratings: bool):
    """Non-negative sparse matrix; integer 'ratings' values make exact ties likely."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < density
    vals = rng.integers(1, 6, size=mask.sum()) if ratings else rng.random(mask.sum()) + 0.01
    dense = np.zeros((n_rows, n_cols), dtype=dtype)
    dense[mask] = vals
    return sp.csr_matrix(dense)


def assert_same_csr(got, ref) -> None:
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)
    assert got.dtype == ref.dtype


def test_without_dask_the_backend_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    X = sp.eye(4, format="csr")
    with pytest.raises(BackendUnavailableError, match=r"pip install .*recsys-fast\[dask\]"):
        cosine_topk(X, 1, backend="dask")
    with pytest.raises(BackendUnavailableError, match="dask.distributed is not installed"):
        FixedCF("item", 2, backend="dask").fit(sp.csr_matrix(np.ones((3, 3))))


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    warmup()  # numba compiled (or loaded) here and cached on disk for the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


@pytest.fixture
def client(cluster):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(cluster, set_as_default=False) as c, c.as_current():
        yield c


# ---------------------------------------------------------------- cosine_topk


@PROPS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_rows=st.integers(2, 60),
    n_cols=st.integers(1, 40),
    density=st.sampled_from([0.0, 0.05, 0.2, 0.6]),
    dtype=st.sampled_from([np.float32, np.float64]),
    ratings=st.booleans(),
    k_frac=st.floats(0.0, 1.0),
    include_self=st.booleans(),
    strategy=st.sampled_from(["auto", "sparse", "dense", "spmm", "spgemm"]),
    rows_per_task=st.sampled_from([None, 1, 7, 100]),
    block=st.sampled_from([None, 3, 16]),
    pairs=st.sampled_from([None, True, False]),
    transport=st.sampled_from(["auto", "scatter"]),
)
def test_cosine_topk_dask_equals_single_process(client, seed, n_rows, n_cols, density, dtype,
                                                ratings, k_frac, include_self, strategy,
                                                rows_per_task, block, pairs, transport):
    from recsys_fast.kernels.distributed import cosine_topk_dask

    X = random_matrix(seed, n_rows, n_cols, density, dtype, ratings)
    k = 1 + int(k_frac * ((n_rows if include_self else n_rows - 1) - 1))
    block = None if strategy == "sparse" else block  # sparse takes no block size
    kw = dict(include_self=include_self, strategy=strategy, dtype=dtype, block_rows=block)
    ref = cosine_topk_result(X, k, **kw)
    got = cosine_topk_dask(X, k, rows_per_task=rows_per_task, pairs=pairs, client=client,
                           transport=transport, **kw)
    assert got.strategy == ref.strategy
    assert_same_csr(got.matrix, ref.matrix)
    shared = transport == "auto" and got.strategy == "sparse"  # this cluster sees our files
    assert got.timing["transport"] == ("shared memory" if shared else "scatter")


@pytest.mark.parametrize("transport", ["shared", "scatter"])
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("pairs", [True, False])
def test_sparse_pairs_and_row_ranges_equal_single_process(client, include_self, pairs,
                                                          transport, tmp_path, monkeypatch):
    from recsys_fast.dask_shared import ROOT_ENV
    from recsys_fast.kernels.distributed import cosine_topk_dask

    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    D = random_matrix(21, 150, 12, 0.3, np.float32, ratings=True).toarray()  # many ties
    D[7] = 0  # a zero row: no neighbours, nobody's neighbour
    X = sp.csr_matrix(D)
    ref = cosine_topk(X, 9, include_self=include_self, strategy="sparse")
    res = cosine_topk_dask(X, 9, include_self=include_self, strategy="sparse", pairs=pairs,
                           rows_per_task=11, transport=transport, client=client)
    got = res.matrix
    assert_same_csr(got, ref)
    assert got[7].nnz == 0 and got[:, 7].nnz == 0
    assert res.timing["transport"] == ("shared memory" if transport == "shared"
                                       else "scatter")
    assert list(tmp_path.iterdir()) == []  # the shared folder is gone after the call


# ---------------------------------------------------------------- shared-memory transport


def test_shared_folder_removed_when_a_task_fails(client, tmp_path, monkeypatch):
    from recsys_fast.dask_shared import ROOT_ENV
    from recsys_fast.kernels import distributed as distributed_driver
    from recsys_fast.kernels.distributed import cosine_topk_dask

    def fails(plan, a, b):  # shipped by value to the workers
        raise RuntimeError("task failed on purpose")

    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.setattr(distributed_driver, "row_topk_task", fails)
    X = random_matrix(3, 40, 10, 0.3, np.float32, ratings=True)
    with pytest.raises(RuntimeError, match="on purpose"):
        cosine_topk_dask(X, 3, strategy="sparse", pairs=False, transport="shared",
                         client=client)
    assert list(tmp_path.iterdir()) == []


def test_auto_scatters_where_workers_cannot_see_the_folder_and_shared_refuses(
        client, tmp_path, monkeypatch):
    from recsys_fast import dask_shared
    from recsys_fast.errors import ConfigError
    from recsys_fast.kernels.distributed import cosine_topk_dask

    monkeypatch.setenv(dask_shared.ROOT_ENV, str(tmp_path))
    with dask_shared.SharedArrays() as shared:  # the real check: every worker reads the token
        assert shared.visible_to(client)
        (Path(shared.path) / "token").write_text("another machine's folder")
        assert not shared.visible_to(client)
    monkeypatch.setattr(dask_shared.SharedArrays, "visible_to", lambda self, c: False)
    X = random_matrix(4, 50, 12, 0.3, np.float32, ratings=True)
    ref = cosine_topk(X, 4, strategy="sparse")
    res = cosine_topk_dask(X, 4, strategy="sparse", client=client)
    assert res.timing["transport"] == "scatter"
    assert_same_csr(res.matrix, ref)
    with pytest.raises(ConfigError, match="cannot read .*transport='scatter'"):
        cosine_topk_dask(X, 4, strategy="sparse", transport="shared", client=client)
    assert list(tmp_path.iterdir()) == []


def test_auto_scatters_when_the_shared_folder_has_no_room(client, tmp_path, monkeypatch):
    import collections

    from recsys_fast import dask_shared
    from recsys_fast.kernels.distributed import cosine_topk_dask

    monkeypatch.setenv(dask_shared.ROOT_ENV, str(tmp_path))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(dask_shared.shutil, "disk_usage", lambda p: usage(100, 90, 10))
    X = random_matrix(5, 50, 12, 0.3, np.float32, ratings=True)
    ref = cosine_topk(X, 4, strategy="sparse")
    res = cosine_topk_dask(X, 4, strategy="sparse", client=client)
    assert res.timing["transport"] == "scatter"
    assert_same_csr(res.matrix, ref)
    with pytest.raises(dask_shared.SharedSpaceError, match="do not fit in the 0 MiB free"):
        cosine_topk_dask(X, 4, strategy="sparse", transport="shared", client=client)
    assert list(tmp_path.iterdir()) == []


def test_folders_of_dead_processes_are_swept(tmp_path):
    import subprocess

    from recsys_fast import dask_shared

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"{dask_shared.folder_prefix(int(done.stdout))}abc"
    live = tmp_path / f"{dask_shared.folder_prefix()}def"
    other_host = tmp_path / f"{dask_shared.PREFIX}another.host-{int(done.stdout)}-ghi"
    other = tmp_path / "unrelated"
    for d in (dead, live, other_host, other):
        d.mkdir()
    with dask_shared.SharedArrays(tmp_path) as shared:
        assert Path(shared.path).is_dir()
        assert Path(shared.path).name.startswith(dask_shared.folder_prefix())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host.name,
                                                                 other.name])


def test_bad_transport_is_refused(client):
    from recsys_fast.kernels.distributed import cosine_topk_dask

    with pytest.raises(ValueError, match="transport must be"):
        cosine_topk_dask(sp.eye(3, format="csr"), 1, transport="tcp", client=client)


def test_cosine_topk_backend_dask_runs_on_the_active_client(client, cluster):
    from recsys_fast.dask_backend import last_cluster

    X = random_matrix(3, 200, 50, 0.1, np.float32, ratings=True)  # ties between rows
    got = cosine_topk(X, 10, backend="dask")
    assert_same_csr(got, cosine_topk(X, 10))
    info = last_cluster()
    assert info["source"] == "active client"
    assert info["scheduler"] == cluster.scheduler_address
    assert info["n_workers"] == 2 and info["threads"] == 2
    assert client.status == "running"  # a client found active is not closed


@pytest.mark.realdata
@pytest.mark.parametrize("strategy", ["auto", "dense"])
def test_ml100k_top50_equal_on_dask(client, ml100k_dir, strategy):
    df = pd.read_csv(ml100k_dir / "u.data", sep="\t",
                     names=["user_id", "item_id", "rating", "timestamp"])
    R = build_user_item_csr(df.user_id.to_numpy() - 1, df.item_id.to_numpy() - 1,
                            df.rating.to_numpy())
    from recsys_fast.kernels.distributed import cosine_topk_dask

    for X in (R.T.tocsr(), R):  # item-item, user-user
        res = cosine_topk_result(X, 50, strategy=strategy)
        got = cosine_topk_result(X, 50, strategy=strategy, backend="dask")
        assert got.strategy == res.strategy
        ref = res.matrix
        assert_same_csr(got.matrix, ref)
        if res.strategy == "sparse":  # both forms: pairs once with merged heaps, full rows
            assert_same_csr(cosine_topk_dask(X, 50, pairs=True, client=client).matrix, ref)
            assert_same_csr(cosine_topk_dask(X, 50, pairs=False, client=client).matrix, ref)


# ---------------------------------------------------------------- which cluster


def test_scheduler_address_from_the_environment(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from recsys_fast.dask_backend import SCHEDULER_ENV, last_cluster

    X = random_matrix(5, 80, 30, 0.2, np.float64, ratings=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as external:
        monkeypatch.setenv(SCHEDULER_ENV, external.scheduler_address)
        got = cosine_topk(X, 5, backend="dask", dtype=np.float64)
        info = last_cluster()
        assert info["source"] == "scheduler address"
        assert info["scheduler"] == external.scheduler_address
        assert len(external.scheduler_info["workers"]) == 1  # the cluster keeps running
    assert_same_csr(got, cosine_topk(X, 5, dtype=np.float64))
    with pytest.raises(ValueError):
        distributed.default_client()  # the client opened for the call is gone


@pytest.mark.slow  # starts a dask LocalCluster
def test_local_cluster_started_and_closed(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from recsys_fast import dask_backend

    monkeypatch.delenv(dask_backend.SCHEDULER_ENV, raising=False)
    started = []
    real = dask_backend._local_cluster

    def spy(mod):
        c = real(mod)
        started.append(c)
        return c

    monkeypatch.setattr(dask_backend, "_local_cluster", spy)
    X = random_matrix(9, 60, 20, 0.3, np.float32, ratings=True)
    got = cosine_topk(X, 4, backend="dask")
    assert_same_csr(got, cosine_topk(X, 4))
    assert dask_backend.last_cluster()["source"] == "LocalCluster"
    assert len(started) == 1 and started[0].status.name == "closed"
    with pytest.raises(ValueError):
        distributed.default_client()


# ---------------------------------------------------------------- FixedCF, TF-IDF


@pytest.mark.parametrize("kind", ["user", "item"])
def test_fixed_cf_recommend_and_predict_users_on_dask(client, kind):
    rng = np.random.default_rng(1)
    n_users, n_items = 70, 45
    mask = rng.random((n_users, n_items)) < 0.2
    R = sp.csr_matrix(np.where(mask, rng.integers(1, 6, (n_users, n_items)), 0).astype(float))
    ref = FixedCF(kind, 8).fit(R)
    dist = FixedCF(kind, 8, backend="dask").fit(R)
    assert dist.driver == "dask" and ref.driver is None
    assert_same_csr(dist.neighbours_, ref.neighbours_)
    users = np.arange(n_users)
    np.testing.assert_array_equal(dist.predict_users(users), ref.predict_users(users))
    items, scores = dist.recommend(users, 10)
    ref_items, ref_scores = ref.recommend(users, 10)
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_array_equal(scores, ref_scores)

    from recsys_fast.kernels.distributed import predict_users_dask, recommend_dask

    some = rng.permutation(n_users)[:23]  # any order, small tasks
    np.testing.assert_array_equal(predict_users_dask(dist, some, rows_per_task=4),
                                  ref.predict_users(some))
    it, sc = recommend_dask(dist, some, 5, batch_size=3, rows_per_task=5)
    np.testing.assert_array_equal(it, ref.recommend(some, 5)[0])
    np.testing.assert_array_equal(sc, ref.recommend(some, 5)[1])


@pytest.mark.slow  # a dask cluster per kind
@pytest.mark.parametrize("kind", ["item-cosine", "item-bm25", "user"])
def test_knn_rankers_on_dask_equal_the_cpu(client, kind):
    from recsys_fast.kernels import ItemKNN, UserKNN
    from recsys_fast.kernels.distributed import rank_recommend_dask

    rng = np.random.default_rng(2)
    n_users, n_items = 80, 50
    mask = rng.random((n_users, n_items)) < 0.2
    R = sp.csr_matrix(np.where(mask, rng.integers(1, 6, (n_users, n_items)), 0).astype(float))

    def make(backend):
        if kind == "user":
            return UserKNN(8, backend=backend)
        return ItemKNN(9, kind.split("-")[1], backend=backend)

    ref, dist = make("cpu").fit(R), make("dask").fit(R)
    assert dist.driver == "dask" and ref.driver is None
    assert_same_csr(dist.similarity_, ref.similarity_)
    users = np.arange(n_users)
    for got, want in zip(dist.recommend(users, 10), ref.recommend(users, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    some = rng.permutation(n_users)[:23]  # any order, small tasks
    it, sc = rank_recommend_dask(dist, some, 5, rows_per_task=4)
    np.testing.assert_array_equal(it, ref.recommend(some, 5)[0])
    np.testing.assert_array_equal(sc, ref.recommend(some, 5)[1])
    if kind != "user":  # a user's current history travels with its task
        hist = R[some].copy()
        hist.data[:] = 1.0
        got = rank_recommend_dask(dist, some, 5, user_items=hist, rows_per_task=5)
        want = ref.recommend(some, 5, user_items=hist)
        np.testing.assert_array_equal(got[0], want[0])


def test_tfidf_topk_on_dask(client):
    from recsys_fast.data.text import synthetic_documents

    docs = synthetic_documents(120, seed=3, n_words=(10, 40))
    ref = tfidf_topk(docs, k=9)
    got = tfidf_topk(docs, k=9, backend="dask")
    assert got.strategy == ref.strategy
    np.testing.assert_array_equal(got.neighbours, ref.neighbours)
    np.testing.assert_array_equal(got.scores, ref.scores)


# ---------------------------------------------------------------- faults, external cluster


def _children() -> set[int]:
    """Child processes, except multiprocessing's resource tracker (it lives as long as we do)."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())}


@pytest.mark.slow  # starts a dask LocalCluster
@pytest.mark.parametrize("transport", ["shared", "scatter"])
def test_a_worker_killed_mid_run_is_retried_and_the_result_is_complete(tmp_path, monkeypatch,
                                                                       transport):
    """One task kills its own worker process (once: a marker file); dask reruns the task on
    a live worker (which maps the shared arrays afresh, or gets X scattered again) and the
    result equals the single-process one."""
    distributed = pytest.importorskip("distributed")
    from recsys_fast.kernels import _topk_rows
    from recsys_fast.kernels import distributed as distributed_driver
    from recsys_fast.kernels.distributed import cosine_topk_dask

    marker = str(tmp_path / "killed")
    real = _topk_rows.row_topk_task

    def dies_once(plan, a, b):  # defined here: cloudpickle ships it by value to the workers
        import os
        import signal

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return real(plan, a, b)
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(distributed_driver, "row_topk_task", dies_once)
    X = random_matrix(11, 120, 30, 0.2, np.float32, ratings=True)
    ref = cosine_topk(X, 6, strategy="sparse")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        res = cosine_topk_dask(X, 6, strategy="sparse", pairs=False, rows_per_task=10,
                               transport=transport, client=c)
    assert (tmp_path / "killed").exists()  # a worker really died mid-run
    assert res.tasks == ("row ranges", 12)
    assert_same_csr(res.matrix, ref)


@pytest.fixture
def external_scheduler(tmp_path):
    """``dask scheduler`` + ``dask worker`` subprocesses on 127.0.0.1 (random port)."""
    pytest.importorskip("distributed")
    import json
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    import recsys_fast

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(recsys_fast.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    file = tmp_path / "scheduler.json"
    procs = []

    def start(*args):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli." + args[0],
                                       *args[1:]], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0",
              "--dashboard-address", ":0", "--scheduler-file", str(file))
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        start("dask_worker", "--scheduler-file", str(file), "--nthreads", "1",
              "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard")
        yield address
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_external_scheduler_by_address_and_from_the_harness(external_scheduler, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from recsys_fast.dask_backend import SCHEDULER_ENV, last_cluster
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import RunSettings, run_case

    with distributed.Client(external_scheduler, set_as_default=False) as c:
        c.wait_for_workers(1, timeout=60)
    monkeypatch.setenv(SCHEDULER_ENV, external_scheduler)
    before = _children()
    X = random_matrix(4, 90, 25, 0.2, np.float32, ratings=True)
    assert_same_csr(cosine_topk(X, 7, backend="dask"), cosine_topk(X, 7))
    info = last_cluster()
    assert info["source"] == "scheduler address"
    assert info["scheduler"] == external_scheduler
    assert info["n_workers"] == 1 and info["worker_threads"] == [1]

    reg = default_registry()
    res = run_case(reg.get("cosine_topk", "optimised", "dask"), "tiny", CaseContext(reg),
                   RunSettings(repeat=2, min_rounds=1, warmup=1))
    assert res.status == "ok", res.error or res.skipped_reason
    assert res.verdict == "equal" and res.rounds == 2
    assert res.extra["scheduler"] == external_scheduler
    assert res.extra["n_workers"] == 1 and res.extra["threads_per_worker"] == [1]
    assert len(res.extra["worker_memory_limit_bytes"]) == 1
    assert res.extra["worker_peak_rss_bytes"][0] > 0
    assert _children() == before  # nothing started here; the external cluster stays up
    with distributed.Client(external_scheduler, set_as_default=False) as c:
        assert len(c.scheduler_info()["workers"]) == 1


def test_scheduler_option_refuses_a_bad_address(capsys):
    from recsys_fast.cli import main

    assert main(["bench", "--scale", "tiny", "--scheduler", "localhost"]) == 2
    assert "not a dask scheduler address like tcp://" in capsys.readouterr().err


# ---------------------------------------------------------------- harness cases


@pytest.mark.slow  # starts a dask LocalCluster
def test_no_cluster_left_running_after_a_call_or_a_harness_case(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from recsys_fast import dask_backend
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import RunSettings, run_case

    monkeypatch.delenv(dask_backend.SCHEDULER_ENV, raising=False)
    started = []

    def one_worker(mod):  # as _local_cluster, smaller: the test is about closing it
        started.append(mod.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                        dashboard_address=":0"))
        return started[-1]

    monkeypatch.setattr(dask_backend, "_local_cluster", one_worker)
    before = _children()
    X = random_matrix(2, 50, 20, 0.3, np.float32, ratings=True)
    cosine_topk(X, 3, backend="dask")
    reg = default_registry()
    res = run_case(reg.get("cosine_topk", "optimised", "dask"), "tiny", CaseContext(reg),
                   RunSettings(repeat=1, min_rounds=1, warmup=1))
    assert res.status == "ok", res.error or res.skipped_reason
    assert res.extra["scheduler"] == "LocalCluster" and res.extra["n_workers"] == 1
    assert len(started) == 2
    assert all(c.status.name == "closed" for c in started)
    assert _children() == before  # every worker process is gone
    with pytest.raises(ValueError):
        distributed.default_client()


def test_tfidf_harness_case_runs_on_the_named_cluster_and_equals_the_naive_lists(cluster,
                                                                                 monkeypatch):
    from recsys_fast.dask_backend import SCHEDULER_ENV
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import RunSettings, run_case

    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    reg = default_registry()
    res = run_case(reg.get("tfidf_topk", "optimised", "dask"), "tiny", CaseContext(reg),
                   RunSettings(repeat=1, min_rounds=1, warmup=1))
    assert res.status == "ok", res.error or res.skipped_reason
    assert res.verdict == "equal" and res.checked_against == "naive"
    assert res.extra["scheduler"] == cluster.scheduler_address
    assert res.extra["n_workers"] == 2 and res.extra["threads_per_worker"] == [1, 1]
    assert res.extra["strategy"]
    assert cluster.status.name == "running"  # the case closed its client, not the cluster


def test_knn_recommend_harness_case_runs_on_the_named_cluster(cluster, monkeypatch):
    from recsys_fast.dask_backend import SCHEDULER_ENV
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import RunSettings, run_case

    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    reg = default_registry()
    res = run_case(reg.get("knn_recommend", "optimised", "dask"), "tiny", CaseContext(reg),
                   RunSettings(repeat=1, min_rounds=1, warmup=1))
    assert res.status == "ok", res.error or res.skipped_reason
    assert res.verdict in ("equal", "equal up to ties"), res.verdict
    assert res.extra["scheduler"] == cluster.scheduler_address


def test_harness_dask_cases_are_skipped_without_dask(monkeypatch):
    import importlib.util

    from recsys_fast.harness.cases.registry import BACKENDS, default_registry
    from recsys_fast.harness.run import runner
    from recsys_fast.harness.run.context import CaseContext

    reg = default_registry()
    cases = reg.select(backends=["dask"])
    assert "dask" in BACKENDS and {c.kernel for c in cases} >= {"cosine_topk",
                                                                 "cf_fixed_recommend",
                                                                 "knn_recommend",
                                                                 "tfidf_topk"}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))

    def no_setup(ctx, scale):
        raise AssertionError("setup of a skipped case ran")

    for case in cases:
        assert case.requires == ("dask", "distributed")
        res = runner.run_case(dataclasses.replace(case, setup=no_setup), "tiny",
                              CaseContext(reg))
        assert res.status == "skipped"
        assert "optional package distributed not installed" in res.skipped_reason


def test_out_of_core_scales_skip_with_the_reason():
    from recsys_fast.harness.cases.registry import default_registry
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import run_case

    reg = default_registry()
    ctx = CaseContext(reg, budget=16 << 30)
    cpu = run_case(reg.get("cosine_topk", "optimised", "cpu"), "100m", ctx)
    assert cpu.status == "skipped" and "out-of-core" in cpu.skipped_reason
    dask_case = reg.get("cosine_topk", "optimised", "dask")
    # out of core, 1b's estimate does not grow with its billion ratings: within 16 GiB
    from recsys_fast.data.synthetic import scale_spec

    spec = scale_spec("1b")
    assert dask_case.memory_estimate(spec) < 16 << 30
    small = run_case(dask_case, "1b", CaseContext(reg, budget=1 << 30))
    assert small.status == "skipped"
    assert small.skipped_reason.startswith("needs ") and "memory budget 1.0 GiB" in small.skipped_reason
