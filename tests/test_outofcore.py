"""The out-of-core item-item top-k (``cosine_topk_parquet``) equals the in-memory kernel.

The tasks run in this process (``client="inline"``) in the default set; on one small
LocalCluster (2 worker processes x 1 thread, the slow set) they must give the same results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_fast.errors import MemoryBudgetError, RecsysFastError
from recsys_fast.harness.cases.checks import compare_topk, exact_cosine_rows
from recsys_fast.kernels import build_user_item_csr, cosine_topk, warmup

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    warmup()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c


def write_parts(frame: pd.DataFrame, folder, n_parts: int) -> None:
    """``frame`` cut into ``n_parts`` files of consecutive user ranges."""
    folder.mkdir(parents=True, exist_ok=True)
    users = np.unique(frame["user_id"])
    for i, part in enumerate(np.array_split(users, n_parts)):
        rows = frame[frame["user_id"].isin(part)]
        rows.to_parquet(folder / f"part-{i:05d}.parquet", index=False)


def random_ratings(seed: int, n_users: int, n_items: int, n: int, dupes: bool,
                   values: str = "stars") -> pd.DataFrame:
    """``values``: ``stars`` (half stars 0.5-5, stored as uint8 halves), ``real`` (any float,
    stored as float32) or ``mixed`` (real for the first half of the users: files differ)."""
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.6, n_items).astype(float)
    items = rng.choice(n_items, size=n, p=pop / pop.sum()) * 3 + 7  # ids with gaps
    users = rng.integers(0, n_users, n) * 2 + 1
    rating = rng.integers(1, 11, n) / 2.0
    if values != "stars":
        real = rng.random(n) * 4 + 0.01
        rating = real if values == "real" else np.where(users < n_users, real, rating)
    frame = pd.DataFrame({"user_id": users, "item_id": items,
                          "rating": rating.astype(np.float32), "timestamp": np.arange(n)})
    if not dupes:
        frame = frame.drop_duplicates(["user_id", "item_id"], keep="last")
    return frame.sort_values(["user_id", "timestamp"], kind="stable")


def in_memory(frame: pd.DataFrame):
    """Items x users CSR as the in-memory path builds it (a repeat keeps its last rating)."""
    u, ui = np.unique(frame["user_id"], return_inverse=True)
    i, ii = np.unique(frame["item_id"], return_inverse=True)
    R = build_user_item_csr(ui, ii, frame["rating"].to_numpy(np.float32),
                            shape=(u.size, i.size))
    return R.T.tocsr(), i


def check_equal(got, X, k: int, include_self: bool) -> str:
    rows = np.arange(X.shape[0])
    verdict = compare_topk(got, exact_cosine_rows(X, rows), rows, k, include_self=include_self,
                           tol=1e-5, against="exact float64, all rows")
    assert verdict.text.startswith("equal"), verdict
    return verdict.text


@pytest.mark.parametrize("seed,n_parts,k,include_self,n_blocks,dupes,values,group", [
    (0, 1, 5, False, 1, False, "stars", None),
    (1, 3, 10, False, 4, True, "real", 1),
    (2, 4, 3, True, 7, False, "mixed", None),
    (3, 2, 40, False, 50, True, "stars", 1),
    (4, 5, 1, True, 2, False, "mixed", 1),
])
def test_equals_exact_and_in_memory(client, tmp_path, monkeypatch, seed, n_parts, k,
                                    include_self, n_blocks, dupes, values, group):
    from recsys_fast.kernels import outofcore
    from recsys_fast.kernels.outofcore import cosine_rows_parquet, cosine_topk_parquet

    if group is not None:  # one file per group (else all files in one)
        monkeypatch.setattr(outofcore, "file_groups", lambda sizes, _: [[i] for i in
                                                                        range(len(sizes))])
    frame = random_ratings(seed, 80, 60, 1500, dupes, values)
    write_parts(frame, tmp_path / "ratings", n_parts)
    res = cosine_topk_parquet(tmp_path / "ratings", k, include_self=include_self, client=client,
                              n_blocks=n_blocks, scratch=tmp_path / "scratch")
    X, ids = in_memory(frame)
    np.testing.assert_array_equal(res.item_ids, ids)
    check_equal(res.matrix, X, k, include_self)
    ref = cosine_topk(X, k, include_self=include_self, dtype=np.float64)
    assert np.array_equal(np.diff(res.matrix.indptr), np.diff(ref.indptr))
    np.testing.assert_allclose(np.sort(res.matrix.data), np.sort(ref.data), rtol=0, atol=1e-5)
    assert res.stats["ratings"] == X.nnz
    assert res.stats["pair_madds"] > 0
    assert len(res.stats["blocks"]) >= min(n_blocks, 1)
    assert res.stats["file_groups"] == (n_parts if group else 1)
    assert not list((tmp_path / "scratch").iterdir())  # prepared files removed
    assert res.stats["gram_pair_madds"] == float(np.diff(X.T.tocsr().indptr) @ np.diff(
        X.T.tocsr().indptr))
    rows = np.array([0, X.shape[0] // 2, X.shape[0] - 1])
    np.testing.assert_allclose(cosine_rows_parquet(tmp_path / "ratings", rows, client=client),
                               exact_cosine_rows(X, rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed,n_parts,k,include_self,values", [
    (10, 3, 7, False, "stars"),
    # other stored forms compile other kernel specialisations: slow set (default run <= 5 min)
    pytest.param(11, 2, 2, True, "mixed", marks=pytest.mark.slow),
    pytest.param(12, 4, 25, False, "real", marks=pytest.mark.slow)])
def test_inline_equals_exact_and_in_memory(tmp_path, seed, n_parts, k, include_self, values):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(seed, 70, 50, 1200, True, values)
    write_parts(frame, tmp_path / "r", n_parts)
    lines = []
    res = cosine_topk_parquet(tmp_path / "r", k, include_self=include_self, client="inline",
                              n_blocks=4, scratch=tmp_path / "s", progress=lines.append)
    X, ids = in_memory(frame)
    np.testing.assert_array_equal(res.item_ids, ids)
    check_equal(res.matrix, X, k, include_self)
    ref = cosine_topk(X, k, include_self=include_self, dtype=np.float64)
    np.testing.assert_allclose(np.sort(res.matrix.data), np.sort(ref.data), rtol=0, atol=1e-5)
    assert any("block 4/4 done" in line for line in lines) or len(res.stats["blocks"]) != 4
    assert not list((tmp_path / "s").iterdir())


def test_small_block_budget_cuts_more_blocks(tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(5, 60, 50, 900, False)
    write_parts(frame, tmp_path / "r", 2)
    res = cosine_topk_parquet(tmp_path / "r", 4, client="inline", n_blocks=1,
                              block_bytes=50 * 8 * 6, scratch=tmp_path)
    assert len(res.stats["blocks"]) > 2  # n_blocks=1 asked: the budget cut them
    assert res.stats["largest_accumulator_bytes"] <= 50 * 8 * 6
    check_equal(res.matrix, in_memory(frame)[0], 4, False)
    with pytest.raises(MemoryBudgetError, match="one accumulator row of .* needs"):
        cosine_topk_parquet(tmp_path / "r", 4, client="inline", block_bytes=100,
                            scratch=tmp_path)


def test_plan_blocks_balances_work_within_the_budget():
    from recsys_fast.kernels.outofcore import plan_blocks

    work = np.array([100.0, 50, 50, 25, 25, 10, 10, 10, 10, 10])
    blocks = plan_blocks(work, budget=10**9, n_blocks=3)
    assert blocks[0][0] == 0 and blocks[-1][1] == 10
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(blocks, blocks[1:], strict=False))
    assert blocks[0] == (0, 1)  # the heaviest item fills a block by itself
    tight = plan_blocks(np.ones(10), budget=10 * 8 * 2, n_blocks=1)
    assert all((b1 - b0) * (10 - b0) * 8 <= 160 for b0, b1 in tight)


@pytest.fixture(params=["inline", pytest.param("dask", marks=pytest.mark.slow)])
def runner(request):
    """``"inline"``, or a client of the module's LocalCluster (slow set)."""
    return request.param if request.param == "inline" else request.getfixturevalue("client")


def test_ml100k_equals_in_memory(runner, ml100k_dir, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = pd.read_csv(ml100k_dir / "u.data", sep="\t",
                        names=["user_id", "item_id", "rating", "timestamp"])
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    frame["rating"] = frame["rating"].astype(np.float32)
    write_parts(frame, tmp_path / "ml", 3)
    res = cosine_topk_parquet(tmp_path / "ml", 50, client=runner, scratch=tmp_path)
    X, _ = in_memory(frame)
    assert check_equal(res.matrix, X, 50, False)
    ref = cosine_topk(X, 50)  # the in-memory default (float32)
    np.testing.assert_allclose(np.sort(res.matrix.data), np.sort(ref.data), rtol=0, atol=1e-5)


@pytest.mark.parametrize("change,match", [
    (lambda f: f.drop(columns=["rating"]), "missing column"),
    (lambda f: f.assign(rating=np.where(f.index == f.index[3], np.inf, f["rating"])),
     "not finite"),
    (lambda f: f.assign(item_id=f["item_id"].astype(float).where(f.index != f.index[2])),
     "null"),
])
def test_bad_files_are_named(runner, tmp_path, change, match):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = change(random_ratings(6, 20, 15, 200, False))
    write_parts(frame, tmp_path / "bad", 2)
    with pytest.raises(RecsysFastError, match=match):
        cosine_topk_parquet(tmp_path / "bad", 2, client=runner, scratch=tmp_path)


def test_files_sharing_users_are_refused(runner, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(7, 20, 15, 200, False)
    (tmp_path / "s").mkdir()
    frame.iloc[::2].to_parquet(tmp_path / "s" / "a.parquet", index=False)
    frame.iloc[1::2].to_parquet(tmp_path / "s" / "b.parquet", index=False)
    with pytest.raises(RecsysFastError, match="overlapping user ranges"):
        cosine_topk_parquet(tmp_path / "s", 2, client=runner, scratch=tmp_path)


def test_bad_k_and_missing_folder(runner, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(8, 20, 15, 200, False)
    write_parts(frame, tmp_path / "k", 1)
    n = frame["item_id"].nunique()
    with pytest.raises(ValueError, match="k must be in"):
        cosine_topk_parquet(tmp_path / "k", n, client=runner, scratch=tmp_path)
    with pytest.raises(FileNotFoundError):
        cosine_topk_parquet(tmp_path / "nothing", 2, client=runner)


def test_stats_read_the_user_range_with_or_without_file_statistics(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_fast.kernels.outofcore import stats_task

    frame = random_ratings(9, 30, 20, 300, False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for stats in (True, False):
        path = tmp_path / f"s{stats}.parquet"
        pq.write_table(table, path, write_statistics=stats, row_group_size=50)
        got = stats_task(str(path))
        assert (got["user_min"], got["user_max"]) == (frame.user_id.min(), frame.user_id.max())
        ids, counts = np.unique(frame.item_id, return_counts=True)
        np.testing.assert_array_equal(got["items"], ids)
        np.testing.assert_array_equal(got["counts"], counts)
