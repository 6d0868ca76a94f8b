"""Synthetic ratings as partitioned Parquet, and the user x item CSR built from such a folder."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from recsys_fast.cli import main
from recsys_fast.data.interactions import Interactions, make_items_frame
from recsys_fast.data.parquet import LARGE_SCALES, spec_for, write_synthetic_parquet
from recsys_fast.data.synthetic import SyntheticSpec, generate
from recsys_fast.kernels import build_user_item_csr

pytest.importorskip("pyarrow")


def read_parts(folder) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    assert files, f"no parts in {folder}"
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def in_memory_csr(ratings: pd.DataFrame):
    inter = Interactions(ratings=ratings, items=make_items_frame(np.unique(ratings.item_id)))
    return build_user_item_csr(inter.user_idx, inter.item_idx, inter.values), inter


SMALL = SyntheticSpec(n_users=3_000, n_items=400, n_ratings=120_000, name="small")


def test_memory_mode_equals_the_generator_cut_by_users(tmp_path):
    assert main(["data", "synth", "100k", "--format", "parquet", "--out", str(tmp_path),
                 "--seed", "3"]) == 0
    meta = json.loads((tmp_path / "_synthetic.json").read_text())
    assert meta["mode"] == "memory" and meta["seed"] == 3
    ref = generate("100k", seed=3).ratings
    pd.testing.assert_frame_equal(read_parts(tmp_path), ref)
    meta = write_synthetic_parquet("100k", tmp_path, seed=3, partition_users=200)
    assert len(meta["parts"]) == 5  # 943 users
    assert len(list(tmp_path.glob("part-*.parquet"))) == 5  # the earlier single part is gone
    for part in meta["parts"]:
        users = pd.read_parquet(tmp_path / part["file"]).user_id
        assert users.min() >= part["first_user"] and users.max() <= part["last_user"]
        assert len(users) == part["rows"]
    pd.testing.assert_frame_equal(read_parts(tmp_path), ref)


def test_a_folder_with_other_files_is_refused(tmp_path):
    from recsys_fast.errors import RecsysFastError

    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(RecsysFastError, match="did not write .*notes.txt"):
        write_synthetic_parquet("100k", tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob("part-*.parquet"))


def test_an_interrupted_write_is_marked_unfinished_and_cleared_by_the_next(tmp_path, monkeypatch):
    """Ctrl-C between parts leaves a folder readers refuse as unfinished, and the next write
    into it proceeds (the parts left behind are the writer's own), ending complete."""
    from recsys_fast.data import parquet
    from recsys_fast.errors import RecsysFastError

    real, written = parquet._write_part, []

    def interrupted(frame, path):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        real(frame, path)

    monkeypatch.setattr(parquet, "_write_part", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_parquet(SMALL, tmp_path, partition_users=1_000)
    assert json.loads((tmp_path / "_synthetic.json").read_text())["complete"] is False
    with pytest.raises(RecsysFastError, match="unfinished"):
        parquet.check_complete(tmp_path)
    monkeypatch.setattr(parquet, "_write_part", real)
    meta = write_synthetic_parquet(SMALL, tmp_path, partition_users=1_000)
    assert meta["complete"] is True and len(meta["parts"]) == 3
    parquet.check_complete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["_synthetic.json", *(p["file"] for p in meta["parts"])])


def test_stream_mode_is_deterministic_and_well_formed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic_parquet(SMALL, a, partition_users=700, mode="stream")
    meta = write_synthetic_parquet(SMALL, b, partition_users=700, mode="stream")
    assert meta["mode"] == "stream" and len(meta["parts"]) == 5
    r = read_parts(a)
    pd.testing.assert_frame_equal(r, read_parts(b))
    assert len(r) == SMALL.n_ratings
    assert list(r.dtypes) == [np.int64, np.int64, np.float32, np.int64]
    assert not r.duplicated(["user_id", "item_id"]).any()
    assert set(np.unique(r.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (np.diff(r.user_id.to_numpy()) >= 0).all()
    same_user = np.diff(r.user_id.to_numpy()) == 0
    assert (np.diff(r.timestamp.to_numpy())[same_user] > 0).all()
    counts = r.groupby("user_id").size()
    assert len(counts) == SMALL.n_users and counts.min() >= SMALL.min_per_user
    # user activity is drawn as in the in-memory generator: the same counts per user
    np.testing.assert_array_equal(counts.to_numpy(),
                                  generate(SMALL).ratings.groupby("user_id").size().to_numpy())
    assert 3.2 < r.rating.mean() < 3.8


def test_stream_mode_memory_is_bounded_by_a_part(tmp_path):
    """Peak traced memory stays the same when the set grows 4x with the same part size."""

    def peak_of(n_users: int) -> tuple[int, int]:
        spec = dataclasses.replace(SMALL, n_users=n_users, n_items=2_000,
                                   n_ratings=50 * n_users)
        tracemalloc.start()
        try:
            write_synthetic_parquet(spec, tmp_path / str(n_users), partition_users=1_000,
                                    mode="stream")
            return tracemalloc.get_traced_memory()[1], spec.n_ratings * (8 + 8 + 4 + 8)
        finally:
            tracemalloc.stop()

    peak_of(1_000)  # numba kernel compiled or loaded outside the measurement
    small, _ = peak_of(10_000)
    big, whole = peak_of(40_000)
    assert big < 1.5 * small, f"peak {big:,} bytes at 4x the ratings vs {small:,}"
    assert big < whole / 4, f"peak {big:,} bytes vs {whole:,} for the whole ratings frame"


def test_large_scales_and_unknown_scale():
    assert LARGE_SCALES["100m"].n_ratings == 100_000_380
    assert LARGE_SCALES["100m"].n_users == 4 * 162_541
    assert LARGE_SCALES["1b"].n_ratings == 1_000_003_800
    assert LARGE_SCALES["1b"].n_items == spec_for("25m").n_items
    with pytest.raises(ValueError, match="valid: 100k, 1m, 10m, 25m, 100m, 1b"):
        spec_for("2b")


@pytest.fixture
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_csr_from_parquet_equals_the_in_memory_build(tmp_path, client, mode):
    from recsys_fast.kernels.distributed import user_item_csr_from_parquet

    write_synthetic_parquet(SMALL, tmp_path, partition_users=600, mode=mode)
    got, user_ids, item_ids = user_item_csr_from_parquet(tmp_path, client=client)
    ref, inter = in_memory_csr(read_parts(tmp_path))
    np.testing.assert_array_equal(user_ids, inter.user_ids)
    np.testing.assert_array_equal(item_ids, inter.item_ids)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)


def test_csr_from_parquet_refuses_partitions_sharing_users(tmp_path, client):
    from recsys_fast.kernels.distributed import user_item_csr_from_parquet

    frame = generate("100k").ratings
    frame.iloc[::2].to_parquet(tmp_path / "part-0.parquet", index=False)
    frame.iloc[1::2].to_parquet(tmp_path / "part-1.parquet", index=False)
    with pytest.raises(ValueError, match="share users"):
        user_item_csr_from_parquet(tmp_path, client=client)


def test_harness_parquet_folder_is_written_once_per_scale_and_seed(tmp_path, monkeypatch):
    from recsys_fast.harness.cases.impls_dask import parquet_folder
    from recsys_fast.harness.run.context import CaseContext

    monkeypatch.setenv("RECSYS_FAST_DATA", str(tmp_path))
    folder = parquet_folder(CaseContext(seed=1), "100k")
    assert folder.parent == tmp_path / "synthetic-parquet"
    pd.testing.assert_frame_equal(read_parts(folder), generate("100k", seed=1).ratings)
    stamp = (folder / "part-00000.parquet").stat().st_mtime_ns
    assert parquet_folder(CaseContext(seed=1), "100k") == folder  # reused, not rewritten
    assert (folder / "part-00000.parquet").stat().st_mtime_ns == stamp
    other = parquet_folder(CaseContext(seed=2), "100k")
    assert other != folder and json.loads((other / "_synthetic.json").read_text())["seed"] == 2
