"""The out-of-core item-item top-k (``cosine_topk_parquet``) equals the in-memory kernel.

One small LocalCluster (2 worker processes x 1 thread) serves the module.
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


def random_ratings(seed: int, n_users: int, n_items: int, n: int, dupes: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.6, n_items).astype(float)
    items = rng.choice(n_items, size=n, p=pop / pop.sum()) * 3 + 7  # ids with gaps
    frame = pd.DataFrame({"user_id": rng.integers(0, n_users, n) * 2 + 1, "item_id": items,
                          "rating": rng.integers(1, 6, n).astype(np.float32),
                          "timestamp": np.arange(n)})
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


@pytest.mark.parametrize("seed,n_parts,k,include_self,n_blocks,dupes", [
    (0, 1, 5, False, 1, False),
    (1, 3, 10, False, 4, True),
    (2, 4, 3, True, 7, False),
    (3, 2, 40, False, 50, True),
    (4, 5, 1, True, 2, False),
])
def test_equals_exact_and_in_memory(client, tmp_path, seed, n_parts, k, include_self, n_blocks,
                                    dupes):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(seed, 80, 60, 1500, dupes)
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
    assert not list((tmp_path / "scratch").iterdir())  # prepared files removed


def test_small_block_budget_cuts_more_blocks(client, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(5, 60, 50, 900, False)
    write_parts(frame, tmp_path / "r", 2)
    res = cosine_topk_parquet(tmp_path / "r", 4, client=client, n_blocks=1,
                              block_bytes=50 * 8 * 6, scratch=tmp_path)
    assert len(res.stats["blocks"]) > 2  # n_blocks=1 asked: the budget cut them
    assert res.stats["largest_accumulator_bytes"] <= 50 * 8 * 6
    check_equal(res.matrix, in_memory(frame)[0], 4, False)
    with pytest.raises(MemoryBudgetError, match="one accumulator row of .* needs"):
        cosine_topk_parquet(tmp_path / "r", 4, client=client, block_bytes=100, scratch=tmp_path)


def test_plan_blocks_balances_work_within_the_budget():
    from recsys_fast.kernels.outofcore import plan_blocks

    work = np.array([100.0, 50, 50, 25, 25, 10, 10, 10, 10, 10])
    blocks = plan_blocks(work, budget=10**9, n_blocks=3)
    assert blocks[0][0] == 0 and blocks[-1][1] == 10
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(blocks, blocks[1:], strict=False))
    assert blocks[0] == (0, 1)  # the heaviest item fills a block by itself
    tight = plan_blocks(np.ones(10), budget=10 * 8 * 2, n_blocks=1)
    assert all((b1 - b0) * (10 - b0) * 8 <= 160 for b0, b1 in tight)


def test_ml100k_equals_in_memory(client, ml100k_dir, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = pd.read_csv(ml100k_dir / "u.data", sep="\t",
                        names=["user_id", "item_id", "rating", "timestamp"])
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    frame["rating"] = frame["rating"].astype(np.float32)
    write_parts(frame, tmp_path / "ml", 3)
    res = cosine_topk_parquet(tmp_path / "ml", 50, client=client, scratch=tmp_path)
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
def test_bad_files_are_named(client, tmp_path, change, match):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = change(random_ratings(6, 20, 15, 200, False))
    write_parts(frame, tmp_path / "bad", 2)
    with pytest.raises(RecsysFastError, match=match):
        cosine_topk_parquet(tmp_path / "bad", 2, client=client, scratch=tmp_path)


def test_files_sharing_users_are_refused(client, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(7, 20, 15, 200, False)
    (tmp_path / "s").mkdir()
    frame.iloc[::2].to_parquet(tmp_path / "s" / "a.parquet", index=False)
    frame.iloc[1::2].to_parquet(tmp_path / "s" / "b.parquet", index=False)
    with pytest.raises(RecsysFastError, match="overlapping user ranges"):
        cosine_topk_parquet(tmp_path / "s", 2, client=client, scratch=tmp_path)


def test_bad_k_and_missing_folder(client, tmp_path):
    from recsys_fast.kernels.outofcore import cosine_topk_parquet

    frame = random_ratings(8, 20, 15, 200, False)
    write_parts(frame, tmp_path / "k", 1)
    n = frame["item_id"].nunique()
    with pytest.raises(ValueError, match="k must be in"):
        cosine_topk_parquet(tmp_path / "k", n, client=client, scratch=tmp_path)
    with pytest.raises(FileNotFoundError):
        cosine_topk_parquet(tmp_path / "nothing", 2, client=client)
