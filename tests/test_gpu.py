"""GPU results equal CPU results, kernel by kernel and for the DNN; backend helpers on the CPU.

Tests marked ``gpu`` are skipped by ``conftest.py`` without a usable CUDA device. Each runs the
same public call with ``backend="gpu"`` and ``backend="cpu"`` and compares on the host. The
kernel tests also run on ``backend.SimulatedGPU`` (numpy, with CuPy's refusals, under the GPU
code paths), so every GPU branch is exercised in CI; only CuPy itself needs the device.

Tolerances (GPU against CPU, same dtype; the two differ only in summation order):

* exact: CSR build (no arithmetic), masks, integer outputs without near-ties;
* float64: rtol 1e-9, atol 1e-12 (cosine, prediction: a few thousand-term sums and a division);
* float32: rtol 1e-5, atol 1e-6 (values of order 1; atol scaled by the value range where the
  values are ratings, i.e. 5e-6 on the 1-5 scale);
* TF32 (``CUPY_TF32=1`` makes cuBLAS round GEMM inputs to a 10-bit mantissa): float32 rtol 2e-3,
  atol 2e-3; CuPy leaves it off by default;
* DNN forward, float32 with JAX matmul precision "highest" (PyTorch does not use TF32 for
  matmuls by default): rtol 1e-4, atol 1e-6 (cuBLAS/cuDNN reduce in other orders through four
  layers and batch-norm); JAX's default GPU precision (TF32 / bf16 passes) is looser, not compared.

Top-k results are compared up to near-ties: kept similarities sorted per row must match to the
tolerance, and every neighbour whose similarity clears the k-th value by more than the tolerance
must be kept by both.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_fast import backend
from recsys_fast.backend import SimulatedGPU, block_rows_for, to_host
from recsys_fast.errors import MemoryBudgetError

REPO = Path(__file__).resolve().parents[1]
TF32 = os.environ.get("CUPY_TF32", "0") not in ("", "0")
TOL = {
    np.dtype(np.float32): dict(rtol=2e-3, atol=2e-3) if TF32 else dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12),
}
RATING_SCALE = 5.0
DNN_TOL = dict(rtol=1e-4, atol=1e-6)


def tol(dtype, scale: float = 1.0) -> dict:
    t = TOL[np.dtype(dtype)]
    return dict(rtol=t["rtol"], atol=t["atol"] * scale)


def ratings(seed: int = 0, n_users: int = 300, n_items: int = 200, density: float = 0.08,
            continuous: bool = False) -> sp.csr_matrix:
    """A user x item rating matrix; ``continuous`` ratings make exact similarity ties unlikely."""
    rng = np.random.default_rng(seed)
    R = sp.random(n_users, n_items, density=density, format="csr", random_state=rng)
    R.data = 1.0 + 4.0 * R.data if continuous else rng.integers(1, 6, R.nnz).astype(np.float64)
    keep_users = np.ones(n_users)
    keep_users[5] = 0  # an empty user
    keep_items = np.ones(n_items)
    keep_items[7] = 0  # an unrated item
    R = (sp.diags(keep_users) @ R @ sp.diags(keep_items)).tocsr()
    R.eliminate_zeros()
    return R


@pytest.fixture(scope="module")
def gpu():
    return backend.get_backend("gpu")


@pytest.fixture(params=[pytest.param("gpu", marks=pytest.mark.gpu), "simulated"])
def device(request):
    """The real GPU (skipped without one) and the simulated one (numpy under the GPU paths)."""
    return backend.get_backend("gpu") if request.param == "gpu" else SimulatedGPU()


def on_device(gpu, x) -> bool:
    return isinstance(x, gpu.xp.ndarray) or gpu.sparse.issparse(x)


def assert_topk_close(got, want, dtype):
    """Row by row: sorted kept values close; clearly-above-k-th neighbours kept by both."""
    t = tol(dtype)
    G, C = to_host(got).tocsr(), to_host(want).tocsr()
    assert G.shape == C.shape
    margin = 10 * (t["atol"] + t["rtol"])
    for i in range(C.shape[0]):
        gs, cs = G[i], C[i]
        np.testing.assert_allclose(np.sort(gs.data)[::-1], np.sort(cs.data)[::-1], **t,
                                   err_msg=f"row {i}")
        if cs.nnz:
            kth = cs.data.min()
            sure = set(cs.indices[cs.data > kth + margin])
            assert sure <= set(gs.indices), f"row {i}: GPU lost neighbours {sure - set(gs.indices)}"


# -- CPU: backend helpers (always run) -----------------------------------------------------
@pytest.mark.parametrize("dev", ["cpu", "simulated"])
def test_entry_rows_and_dense_copy(dev):
    be = backend.CPU if dev == "cpu" else SimulatedGPU()
    rows = np.array([0, 0, 2, 2, 2, 5, 5])  # empty rows 1, 3, 4 and a trailing empty row 6
    cols = np.array([1, 3, 0, 0, 4, 2, 2])  # duplicates (2, 0) and (5, 2): summed
    X = sp.csr_matrix((np.arange(1.0, 8.0), (rows, cols)), shape=(7, 5))
    X.has_canonical_format = False
    np.testing.assert_array_equal(be.entry_rows(X.indptr), np.repeat(np.arange(7),
                                                                     np.diff(X.indptr)))
    D = be.dense(X, np.float32)
    assert D.dtype == np.float32 and D.flags.c_contiguous
    np.testing.assert_array_equal(D, X.toarray().astype(np.float32))
    assert be.dense(sp.csr_matrix((3, 2))).sum() == 0


def test_simulated_gpu_refuses_what_cupy_refuses():
    xp = SimulatedGPU().xp
    assert xp.repeat(np.arange(3), 2).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="repeats"):
        xp.repeat(np.arange(3), np.array([1, 2, 3]))
    with pytest.raises(AttributeError, match="isneginf"):
        xp.isneginf(np.zeros(2))
    assert xp.ndarray is np.ndarray and xp.float32 is np.float32


def test_block_rows_from_fake_free_memory():
    dev = SimulatedGPU(8 << 30)  # 8 GiB free
    row = 4 * 60_000  # one float32 row of an n = 60,000 similarity block
    assert block_rows_for(row, dev) == (4 << 30) // row  # half of the free memory by default
    assert block_rows_for(row, dev, fraction=0.25) == (2 << 30) // row
    assert block_rows_for(row, dev, n_rows=1000) == 1000  # never more rows than the matrix
    assert block_rows_for(row, "cpu", free_bytes=10 * row, fraction=1.0) == 10
    assert block_rows_for(row, SimulatedGPU(3 * row), fraction=1.0, min_rows=3) == 3
    with pytest.raises(MemoryBudgetError, match="on gpu") as err:
        block_rows_for(row, SimulatedGPU(3 * row), fraction=1.0, min_rows=4)
    assert err.value.needed == 4 * row and err.value.available == 3 * row


def test_block_rows_on_cpu_follow_the_memory_budget(monkeypatch):
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "1M")
    assert block_rows_for(1000, "cpu") == (1 << 20) // 2 // 1000
    assert block_rows_for(1000, backend.CPU, fraction=1.0) == (1 << 20) // 1000


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bytes_per_row=0), "bytes_per_row"),
        (dict(bytes_per_row=-8), "bytes_per_row"),
        (dict(bytes_per_row=2.5), "bytes_per_row"),
        (dict(bytes_per_row=8, fraction=0.0), "fraction"),
        (dict(bytes_per_row=8, fraction=1.5), "fraction"),
        (dict(bytes_per_row=8, min_rows=0), "min_rows"),
        (dict(bytes_per_row=8, n_rows=-1), "n_rows"),
        (dict(bytes_per_row=8, free_bytes=-1), "free_bytes"),
        (dict(bytes_per_row=8, backend="tpu"), "unknown backend 'tpu'"),
    ],
)
def test_block_rows_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        block_rows_for(**kwargs)


def test_block_rows_on_a_missing_gpu_is_clear(monkeypatch):
    from recsys_fast.errors import BackendUnavailableError

    monkeypatch.setattr(backend, "_gpu_probe", lambda: (None, "cupy not importable (test)"))
    with pytest.raises(BackendUnavailableError, match="cupy not importable"):
        block_rows_for(1024, "gpu")
    assert block_rows_for(1024, "gpu", free_bytes=4096) == 2  # an explicit budget needs no GPU


def _load_driver():
    import importlib.util as iu

    spec = iu.spec_from_file_location("run_gpu_cases", REPO / "bench" / "gpu" / "run_gpu_cases.py")
    mod = iu.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_gpu_case_driver_saves_each_case_and_keeps_the_budget(tmp_path):
    from recsys_fast.results_store import load_results

    driver = _load_driver()
    common = ["--scales", "tiny", "--kernels", "csr_build", "--quick"]
    assert driver.main([*common, "--budgets", "0", "--out", str(tmp_path / "none")]) == 0
    (path,) = (tmp_path / "none").rglob("*.json")
    rows = load_results(path)["cases"]
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert all("time budget of 0 s for scale tiny spent" in r["skipped_reason"] for r in rows)
    assert driver.main([*common, "--budgets", "120", "--out", str(tmp_path / "run")]) == 0
    (path,) = (tmp_path / "run").rglob("*.json")
    data = load_results(path)
    cpu = [r for r in data["cases"] if r["backend"] == "cpu"]
    assert [(r["impl"], r["status"], r["verdict"]) for r in cpu] == [("optimised", "ok", "equal")]
    assert data["settings"]["budgets_s"] == {"tiny": 120.0}
    with pytest.raises(SystemExit, match="one per scale"):
        driver.main([*common, "--budgets", "1,2", "--out", str(tmp_path / "bad")])


@pytest.mark.slow
def test_gpu_case_driver_on_a_simulated_gpu(tmp_path, monkeypatch):
    """Every GPU case of the harness, end to end through the GPU driver, on the simulated GPU:
    set up, run, checked against the CPU/naive references and saved, labelled simulated."""
    from recsys_fast.results_store import load_results

    monkeypatch.setenv(backend.SIMULATE_ENV, "1")
    backend._gpu_probe.cache_clear()
    try:
        driver = _load_driver()
        reg = driver.default_registry()
        kernels = [k for k in reg.kernels if not k.startswith("dnn")  # those with a GPU case
                   and any(c.backend == "gpu" for c in reg.select(kernels=[k]))]
        args = ["--scales", "tiny,100k", "--budgets", "300,0", "--quick", "--backend", "gpu",
                "--kernels", ",".join(kernels), "--out", str(tmp_path)]
        assert driver.main(args) == 0
    finally:
        backend._gpu_probe.cache_clear()
    (path,) = tmp_path.rglob("*.json")
    assert "simulated-gpu" in path.parent.name
    data = load_results(path)
    assert data["machine"]["gpu"]["simulated"] is True
    order = [r["kernel"] for r in data["cases"] if r["scale"] == "tiny"]
    assert order[0] == "cosine_topk" and order[1] == "csr_build"  # headline kernels first
    later = [r for r in data["cases"] if r["scale"] == "100k"]  # the next scale: budget 0
    assert later and all("time budget of 0 s" in r["skipped_reason"] for r in later)
    rows = {r["kernel"]: r for r in data["cases"] if r["backend"] == "gpu" and r["scale"] == "tiny"}
    assert set(rows) == set(kernels)  # weighted_rating included
    for kernel, r in rows.items():
        assert r["status"] == "ok", (kernel, r.get("error"), r.get("skipped_reason"))
        assert r["verdict"].startswith("equal"), (kernel, r["verdict"])
    assert rows["cosine_topk"]["extra"]["strategy"] == "dense"


@pytest.mark.slow
def test_check_script_end_to_end_on_a_simulated_gpu(tmp_path):
    """bench/gpu/check.sh, the one-call GPU check, runs every step and writes its files."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update({backend.SIMULATE_ENV: "1", "CHECK_SKIP_INSTALL": "1", "CHECK_SCALES": "tiny",
                "CHECK_TOPK_SCALES": "tiny", "CHECK_DNN_BACKENDS": "no_such_backend",
                "RECSYS_FAST_DATA": str(tmp_path / "data"), "PYTHON": sys.executable})
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu" / "check.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    assert '"simulated": true' in summary
    for step in ("benchmark tiny", "cosine_topk GPU strategies", "report"):
        assert f"| {step} | ok |" in summary, summary
    assert "| tiny | spmm | spmm |" in summary
    assert {p.name for p in out.iterdir()} >= {"summary.md", "check.log", "report.md",
                                                "results.json", "bench.tar.gz"}


# -- GPU: backend ----------------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_block_rows_fit_free_memory(gpu):
    free = gpu.free_bytes()
    rows = block_rows_for(1 << 20, gpu)
    assert rows >= 1 and rows * (1 << 20) <= free // 2 + (1 << 20)
    assert backend.device_info()["gpu"]


# -- GPU: kernels ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_build_user_item_csr_gpu_equals_cpu(device, dtype):
    from recsys_fast.kernels import build_user_item_csr

    rng = np.random.default_rng(1)
    u = rng.integers(0, 50, 2000)
    i = rng.integers(0, 40, 2000)  # many duplicate pairs: the last one wins
    v = rng.integers(1, 6, 2000).astype(np.float64)
    cpu = build_user_item_csr(u, i, v, dtype=dtype)
    dev = build_user_item_csr(u, i, v, dtype=dtype, backend=device)
    assert on_device(device, dev) and dev.dtype == np.dtype(dtype)
    host = to_host(dev)
    host.sort_indices()
    np.testing.assert_array_equal(host.indptr, cpu.indptr)
    np.testing.assert_array_equal(host.indices, cpu.indices)
    np.testing.assert_array_equal(host.data, cpu.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_distances_gpu_equals_cpu(device, dtype):
    from recsys_fast.kernels import cosine_distances

    R = ratings(2)
    cpu = cosine_distances(R, dtype=dtype)
    dev = cosine_distances(R, dtype=dtype, backend=device)
    assert on_device(device, dev)
    np.testing.assert_allclose(to_host(dev), cpu, **tol(dtype))
    assert to_host(dev).dtype == cpu.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_self", [False, True])
def test_cosine_topk_gpu_equals_cpu(device, dtype, include_self):
    from recsys_fast.kernels import cosine_topk, cosine_topk_result

    R = ratings(3, continuous=True)
    for X in (R, R.T.tocsr()):  # user-user and item-item
        cpu = cosine_topk(X, 20, include_self=include_self, strategy="dense", dtype=dtype)
        res = cosine_topk_result(X, 20, include_self=include_self, block_rows=37, dtype=dtype,
                                 backend=device)
        dev = res.matrix
        assert on_device(device, dev) and res.strategy == "dense"
        assert_topk_close(dev, cpu, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_topk_gpu_plans_equal_cpu(device, dtype):
    """Integer ratings are exact in TF32: float32 takes the raw-value GEMM (TF32 on a real
    device); ``spmm`` and the fallback to it when dense X does not fit give the same top-k."""
    from recsys_fast.backend import tf32_matmul
    from recsys_fast.kernels import cosine_topk, cosine_topk_result

    with tf32_matmul(device) as tf32_works:
        pass
    R = ratings(10)
    for X in (R, R.T.tocsr()):
        cpu = cosine_topk(X, 20, strategy="dense", dtype=dtype)
        auto = cosine_topk_result(X, 20, block_rows=37, dtype=dtype, backend=device)
        assert on_device(device, auto.matrix)
        tf32 = tf32_works and np.dtype(dtype) == np.float32
        assert auto.strategy == ("dense-tf32" if tf32 else "dense")
        assert_topk_close(auto.matrix, cpu, dtype)
        for how in ("spmm", "spgemm"):
            out = cosine_topk_result(X, 20, strategy=how, block_rows=37, dtype=dtype,
                                     backend=device)
            assert out.strategy == how
            assert_topk_close(out.matrix, cpu, dtype)
    if isinstance(device, SimulatedGPU):  # too little memory for dense X: spmm, or spgemm
        for X, want in ((R, "spmm"), (sp.hstack([R] * 7).tocsr(), "spgemm")):  # many features
            n, m = X.shape
            small = SimulatedGPU(free=2 * n * m * np.dtype(dtype).itemsize)
            out = cosine_topk_result(X, 20, block_rows=37, dtype=dtype, backend=small)
            assert out.strategy == want
            assert_topk_close(out.matrix, cosine_topk(X, 20, dtype=dtype), dtype)


@pytest.mark.gpu
def test_tf32_switch_engages_and_is_put_back(gpu):
    from recsys_fast.backend import tf32_matmul

    rng = np.random.default_rng(11)
    a, b = (rng.random((256, 256)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    A, B = gpu.xp.asarray(a), gpu.xp.asarray(b)

    def rel_err():
        return float(np.abs(to_host(A @ B) - exact).max() / np.abs(exact).max())

    before = rel_err()
    with tf32_matmul(gpu) as on:
        during = rel_err()
    after = rel_err()
    if not on:
        pytest.skip("TF32 needs compute capability >= 8.0 and CuPy's compute-type switch")
    assert before < 1e-5 and after < 1e-5  # float32 GEMM outside the block
    assert during > 1e-5  # inputs rounded to a 10-bit mantissa inside it


@pytest.mark.parametrize("kind", ["user", "item"])
def test_predict_course_gpu_equals_cpu(device, kind):
    from recsys_fast.kernels import predict_course, rmse

    R = ratings(4)
    cpu = predict_course(R, kind)
    dev = predict_course(R, kind, backend=device)
    assert on_device(device, dev)
    np.testing.assert_allclose(to_host(dev), cpu, equal_nan=True, **tol(np.float64, RATING_SCALE))
    T = ratings(5)
    if not np.isnan(cpu[T.nonzero()]).any():
        assert rmse(dev, T) == pytest.approx(rmse(cpu, T), rel=1e-9)


@pytest.mark.parametrize("kind", ["user", "item"])
def test_fixed_cf_gpu_equals_cpu(device, kind):
    from recsys_fast.kernels import FixedCF

    R = ratings(6, continuous=True)
    cpu = FixedCF(kind, k=15).fit(R)
    dev = FixedCF(kind, k=15, backend=device).fit(R)
    t = tol(np.float32, RATING_SCALE)
    users = np.arange(R.shape[0]).repeat(3)
    items = np.random.default_rng(0).integers(0, R.shape[1], users.size)
    np.testing.assert_allclose(to_host(dev.predict(users, items)), cpu.predict(users, items), **t)
    some = np.arange(0, R.shape[0], 7)
    np.testing.assert_allclose(to_host(dev.predict_users(some)), cpu.predict_users(some), **t)
    ci, cs = cpu.recommend(some, 10)
    gi, gs = (to_host(a) for a in dev.recommend(some, 10))
    np.testing.assert_allclose(gs, cs, equal_nan=True, **t)
    gap = np.abs(np.diff(cs, axis=1)) > 10 * (t["atol"] + t["rtol"] * RATING_SCALE)
    clear = np.zeros_like(gap[:, :1], dtype=bool)
    distinct = np.concatenate([clear, gap], axis=1) & np.concatenate([gap, clear], axis=1)
    np.testing.assert_array_equal(gi[distinct], ci[distinct])  # items without near-ties


def test_popularity_gpu_equals_cpu(device):
    from recsys_fast.kernels import item_popularity, weighted_rating

    rng = np.random.default_rng(7)
    votes = rng.integers(0, 5000, 3000).astype(np.float64)
    avg = rng.uniform(0, 10, 3000)
    cpu = weighted_rating(votes, avg, 0.9)
    dev = weighted_rating(votes, avg, 0.9, backend=device)
    assert on_device(device, dev.scores)
    assert dev.m == pytest.approx(cpu.m, rel=1e-12) and dev.C == pytest.approx(cpu.C, rel=1e-12)
    np.testing.assert_array_equal(to_host(dev.mask), cpu.mask)
    np.testing.assert_allclose(to_host(dev.scores), cpu.scores, rtol=1e-12)
    R = ratings(8)
    a, b = item_popularity(R), item_popularity(R, backend=device)
    np.testing.assert_allclose(to_host(b.scores), to_host(a.scores), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tfidf_topk_gpu_equals_cpu(device, dtype):
    from recsys_fast.data.text import synthetic_documents
    from recsys_fast.kernels import tfidf_topk

    docs = synthetic_documents(300, seed=1, n_words=(30, 80))
    cpu = tfidf_topk(docs, k=21, dtype=dtype)
    dev = tfidf_topk(docs, k=21, dtype=dtype, backend=device)
    t = tol(dtype)
    np.testing.assert_allclose(dev.scores, cpu.scores, **t)
    gap = np.abs(np.diff(cpu.scores, axis=1)) > 10 * (t["atol"] + t["rtol"])
    edge = np.zeros_like(gap[:, :1], dtype=bool)
    distinct = np.concatenate([edge, gap], axis=1) & np.concatenate([gap, edge], axis=1)
    np.testing.assert_array_equal(dev.neighbours[distinct], cpu.neighbours[distinct])


def test_hybrid_with_gpu_cf_equals_cpu(device):
    from recsys_fast.kernels import FixedCF, SwitchingHybrid

    R = ratings(9, continuous=True)
    cpu = SwitchingHybrid(FixedCF("item", k=10, dtype=np.float64), min_ratings=3).fit(R)
    dev = SwitchingHybrid(FixedCF("item", k=10, dtype=np.float64, backend=device),
                          min_ratings=3).fit(R)
    for user in (0, 1, 5, 17):
        (gs, gsrc), (cs, csrc) = dev.scores(user), cpu.scores(user)
        np.testing.assert_array_equal(gsrc, csrc)
        np.testing.assert_allclose(gs, cs, **tol(np.float64, RATING_SCALE))


# -- GPU: the DNN on JAX / PyTorch (TensorFlow hidden, as on the GPU boxes) --------------------
def _portable(args: list[str], **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), e.get("PYTHONPATH")) if p)
    e["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # share the device with this process's CuPy
    e.update(env)
    proc = subprocess.run([sys.executable, "-m", "recsys_fast.dnn.portable", *args], env=e,
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("name", ["jax", "torch"])
def test_dnn_on_gpu_equals_cpu_and_trains(gpu, name, tmp_path):
    import json

    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    gpu.xp.get_default_memory_pool().free_all_blocks()
    head = ["--keras-backend", name, "--hide-tensorflow"]
    w = tmp_path / "w.npz"
    _portable([*head, "forward", "--save-weights", str(w), "--out", str(tmp_path / "cpu.npz")],
              CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    _portable([*head, "forward", "--weights", str(w), "--out", str(tmp_path / "gpu.npz")],
              JAX_DEFAULT_MATMUL_PRECISION="highest")
    with np.load(tmp_path / "cpu.npz") as c, np.load(tmp_path / "gpu.npz") as g:
        for key in ("inference", "training", "user_vector"):
            np.testing.assert_allclose(g[key], c[key], **DNN_TOL, err_msg=f"{name} {key}")
    out = tmp_path / "train.json"
    _portable([*head, "train", "--epochs", "3", "--batch-size", "32", "--one-bucket",
               "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["device"] == "gpu", f"{name} trained on the {r['device']}: no CUDA build of {name}?"
    assert r["tensorflow_imported"] is False
    assert r["losses"][-1] < r["losses"][0]
    assert 0.0 <= r["recall"]["recall@10"] <= 1.0
