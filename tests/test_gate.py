"""The regression gate: its decision rule on synthetic timings with known shifts, and one
end-to-end run on two commits of a throwaway clone (slow)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from recsys_fast import bench_cli as cli
from recsys_fast.harness import gate

REPO = Path(__file__).resolve().parents[1]


def _rounds(rng, n, shift=1.0, noise=0.05, drift=0.0):
    """Paired rounds: a common drift (both sides), independent lognormal noise each side."""
    trend = 1.0 + drift * np.linspace(0, 1, n)
    base = 0.010 * trend * rng.lognormal(0, noise, n)
    head = 0.010 * shift * trend * rng.lognormal(0, noise, n)
    return base.tolist(), head.tolist()


def test_unchanged_code_rarely_reads_slower():
    rng = np.random.default_rng(1)
    verdicts = [gate.decide(*_rounds(rng, 10)).verdict for _ in range(200)]
    assert verdicts.count("slower") <= 4  # <= 2 %
    assert verdicts.count("same") >= 150


def test_a_20_percent_slowdown_is_caught():
    rng = np.random.default_rng(2)
    verdicts = [gate.decide(*_rounds(rng, 12, shift=1.2)).verdict for _ in range(200)]
    assert verdicts.count("slower") >= 180  # >= 90 %


def test_drift_shared_by_both_sides_cancels():
    rng = np.random.default_rng(3)
    base, head = _rounds(rng, 12, drift=0.5, noise=0.02)  # the machine slows by half
    d = gate.decide(base, head)
    assert d.verdict == "same" and d.lo < 1 < d.hi


def test_faster_and_undecided():
    rng = np.random.default_rng(4)
    assert gate.decide(*_rounds(rng, 12, shift=0.7)).verdict == "faster"
    noisy = gate.decide(*_rounds(rng, 3, shift=1.1, noise=0.3))
    assert noisy.verdict == "undecided"
    with pytest.raises(ValueError):
        gate.decide([], [])


@pytest.fixture
def clone(tmp_path):
    """A clone of this repository with one extra commit that makes weighted_rating 20 ms
    slower per call."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    target = repo / "recsys_fast" / "kernels" / "popularity.py"
    target.write_text(target.read_text() + (
        "\n\n_fast_chart = weighted_rating_chart\n\n\n"
        "def weighted_rating_chart(*args, **kwargs):  # an injected regression\n"
        "    import time\n\n    time.sleep(0.02)\n    return _fast_chart(*args, **kwargs)\n"))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", "slower weighted rating"], check=True)
    return repo


@pytest.mark.slow
def test_gate_fails_on_a_real_slowdown_and_passes_unchanged(clone, tmp_path, capsys):
    args = ["gate", "--repo", str(clone), "--kernels", "weighted_rating", "--scale", "tiny",
            "--budget", "60", "--cache", str(tmp_path / "cache")]
    assert cli.main([*args, "--base", "HEAD~1", "--head", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "weighted_rating/optimised/cpu" in out and "SLOWER" in out
    assert cli.main([*args, "--base", "HEAD~1", "--head", "HEAD~1"]) == 0
    out = capsys.readouterr().out
    assert "no case significantly slower" in out
