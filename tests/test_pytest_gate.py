"""The pytest-benchmark regression gate (``bench/pytest/_gate.py``): its decision on synthetic
timings with known shifts, and a pytest session against a synthetic saved run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench" / "pytest"))
import _gate  # noqa: E402

pytest.importorskip("pytest_benchmark")


def _rounds(rng, n, median=0.02, shift=1.0, sigma=0.1):
    """Round times with log-normal noise (``sigma`` ~ relative spread) around ``median``."""
    return (median * shift * np.exp(rng.normal(0, sigma, n))).tolist()


def test_judge_flags_a_large_slowdown_and_passes_an_unchanged_case(rng):
    base = _rounds(rng, 10)
    slow = _gate.judge("k", base, _rounds(rng, 10, shift=1.6))
    same = _gate.judge("k", base, _rounds(rng, 10))
    assert slow.verdict == "slower" and slow.lo > 1.15, slow
    assert same.verdict == "ok" and same.lo < 1.15, same
    assert "REGRESSED" in slow.line(0.15) and "\n" not in slow.line(0.15)


def test_judge_fails_only_when_the_whole_interval_is_beyond_the_threshold(rng):
    """A 10 % slowdown is below a 15 % threshold: never flagged, however many rounds."""
    j = _gate.judge("k", _rounds(rng, 200), _rounds(rng, 200, shift=1.10))
    assert j.verdict == "ok" and 1.0 < j.lo < 1.15, j
    assert _gate.judge("k", _rounds(rng, 200), _rounds(rng, 200, shift=1.10),
                       threshold=0.05).verdict == "slower"


def test_judge_rates_on_simulated_runs():
    """Unchanged code fails in at most 1 % of 300 simulated comparisons (10 rounds each, 10 %
    noise); a 50 % slowdown is caught in at least 90 %."""
    rng = np.random.default_rng(7)
    false = sum(_gate.judge("k", _rounds(rng, 10), _rounds(rng, 10)).verdict == "slower"
                for _ in range(300))
    caught = sum(_gate.judge("k", _rounds(rng, 10), _rounds(rng, 10, shift=1.5)).verdict
                 == "slower" for _ in range(300))
    assert false <= 3, false
    assert caught >= 270, caught


def test_too_few_rounds_are_not_judged(rng):
    j = _gate.judge("k", _rounds(rng, 3), _rounds(rng, 10, shift=3.0))
    assert j.verdict == "not judged" and "fewer than" in j.note


def _saved_run(data_by_name: dict[str, list[float] | None]) -> dict:
    """A pytest-benchmark JSON file as ``--benchmark-autosave --benchmark-save-data`` writes
    it (the fields its loader and comparison table read)."""
    from pytest_benchmark.stats import Stats

    benches = []
    for name, data in data_by_name.items():
        st = Stats()
        for x in data or [0.02] * 6:
            st.update(x)
        d = {**st.as_dict(), "iterations": 1}
        if data is not None:
            d["data"] = list(data)
        benches.append({"group": None, "name": name.split("::")[-1], "fullname": name,
                        "params": None, "param": None, "extra_info": {}, "options": {},
                        "stats": d})
    return {"machine_info": {"node": "synthetic", "machine": "x86_64"},
            "commit_info": {"id": "0" * 40, "dirty": False}, "benchmarks": benches,
            "datetime": "2026-11-29T00:00:00+00:00", "version": "5.1.0"}


def test_judge_runs_on_a_synthetic_saved_file(rng):
    saved = _saved_run({"t.py::fast": _rounds(rng, 10), "t.py::slowed": _rounds(rng, 10),
                        "t.py::nodata": None})
    now = {"t.py::fast": _rounds(rng, 10), "t.py::slowed": _rounds(rng, 10, shift=2.0),
           "t.py::nodata": _rounds(rng, 10), "t.py::new": _rounds(rng, 10)}
    by_name = {j.name: j for j in _gate.judge_runs(saved["benchmarks"], now)}
    assert set(by_name) == {"t.py::fast", "t.py::slowed", "t.py::nodata"}  # "new": no baseline
    assert by_name["t.py::fast"].verdict == "ok"
    assert by_name["t.py::slowed"].verdict == "slower"
    assert 1.7 < by_name["t.py::slowed"].ratio < 2.3
    assert by_name["t.py::nodata"].verdict == "not judged"
    assert "--benchmark-save-data" in by_name["t.py::nodata"].note


BENCH_FILE = """
import os, time

def test_sleep(benchmark):
    benchmark.pedantic(time.sleep, args=(float(os.environ["SLEEP_S"]),), rounds=6,
                       iterations=1, warmup_rounds=0)

def test_other(benchmark):
    benchmark.pedantic(time.sleep, args=(0.04,), rounds=6, iterations=1, warmup_rounds=0)
"""


@pytest.fixture
def session_dir(tmp_path):
    """A benchmark module, a conftest loading the gate, and a synthetic saved run (40 ms per round)."""
    from pytest_benchmark.utils import get_machine_id

    (tmp_path / "test_fake.py").write_text(BENCH_FILE)
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'bench' / 'pytest')!r})\n"
        "from _gate import pytest_addoption, pytest_sessionfinish, pytest_terminal_summary\n")
    store = tmp_path / "store" / get_machine_id()
    store.mkdir(parents=True)
    saved = _saved_run({"test_fake.py::test_sleep": [0.04] * 6,
                        "test_fake.py::test_other": [0.04] * 6})
    (store / "0001_synthetic.json").write_text(json.dumps(saved))
    return tmp_path


def _session(tmp: Path, sleep_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "test_fake.py", "-q", "-p", "no:cacheprovider",
         "-o", "addopts=", "--rootdir", str(tmp), f"--benchmark-storage=file://{tmp / 'store'}",
         "--benchmark-compare=0001"],
        cwd=tmp, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "SLEEP_S": str(sleep_s), "PYTHONPATH": str(REPO)})


def test_session_against_an_unchanged_saved_run_passes(session_dir):
    proc = _session(session_dir, 0.04)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "gate: 2 case(s) compared" in out and "no case significantly slower" in out, out


def test_session_with_a_doubled_case_fails_with_one_line_and_no_traceback(session_dir):
    proc = _session(session_dir, 0.08)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    regressed = [line for line in out.splitlines() if line.startswith("REGRESSED")]
    assert len(regressed) == 1 and "test_fake.py::test_sleep" in regressed[0], out
    assert "gate: 1 case(s) regressed" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
