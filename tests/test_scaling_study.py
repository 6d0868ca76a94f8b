"""``bench/scaling/dask_scaling.py`` end to end at a small scale: the study file and its plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_scaling_study_writes_equal_results_efficiencies_and_a_plot(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("matplotlib")
    out = tmp_path / "study.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scaling" / "dask_scaling.py"), "--scale", "100k",
         "--workers", "1,2", "--rounds", "1", "-k", "10", "--strategy", "sparse",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    d = json.loads(out.read_text())
    strong = d["strong"]["synthetic-100k"]
    assert strong["strategy"] == "sparse"  # pinned: auto could pick dense at this size
    assert [r["workers"] for r in strong["dask"]] == [1, 2]
    assert [r["threads"] for r in strong["threads"]] == [1, 2]
    for r in strong["dask"] + strong["threads"]:
        assert r["equal"] is True and r["time_s"] > 0 and r["efficiency"] > 0
    assert strong["dask"][0]["efficiency"] == pytest.approx(1.0)
    assert strong["threads"][0]["efficiency"] == pytest.approx(1.0)
    assert all(r["values_within_1e-6"] is True for r in strong["threads"])
    from recsys_fast.kernels.distributed import PARTS_PER_THREAD

    parts = strong["dask"][1]["parts"]  # 2 workers x 1 thread
    assert parts["transport"] == "shared memory"
    assert parts["tasks"] == ["pairs", 2 * PARTS_PER_THREAD]
    assert len(parts["task_compute_s"]) == 2 * PARTS_PER_THREAD
    [weak] = d["weak"].values()
    assert weak["dask"][0]["workers"] == 2 and weak["dask"][0]["equal"] is True
    assert d["environment"]["machine"]["cores_logical"] >= 1
    assert out.with_suffix(".png").stat().st_size > 0
