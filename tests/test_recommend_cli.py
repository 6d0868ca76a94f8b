"""`recsys-fast recommend` as a user runs it (a subprocess): all four recommenders finish,
recommendations are titles, and neither a traceback nor TensorFlow's start-up log shows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, real_path

from recsys_fast.demo import _TF_LOG_LINE

TF_NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cpu_feature_guard")


def run_recommend(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    cmd = [sys.executable, "-m", "recsys_fast.cli", "recommend", "-n", "3", "--epochs", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


def check_output(r: subprocess.CompletedProcess, titles) -> None:
    both = r.stdout + r.stderr
    assert r.returncode == 0, both[-3000:]
    assert "Traceback" not in both
    for section in ("simple recommender", "memory-based CF", "content-based", "YouTube"):
        assert section in r.stdout
    assert "over 1 epochs" in r.stdout and "top-3 candidates" in r.stdout
    assert "item ids" not in r.stdout
    shown = [ln.strip() for ln in r.stdout.splitlines() if ln.startswith("  ") and "[" not in ln]
    assert sum(1 for ln in shown if any(ln.startswith(t) for t in titles)) >= 9
    for noise in TF_NOISE:
        assert noise not in both


def test_tf_log_filter_matches_cxx_log_lines_only():
    assert _TF_LOG_LINE.match("I0000 00:00:1795973661.330986    6512 port.cc:153] oneDNN on")
    assert _TF_LOG_LINE.match("E0000 00:00:1795973577.332212    5630 cuda_platform.cc:52] x")
    assert not _TF_LOG_LINE.match("UserWarning: something a user should see")
    assert not _TF_LOG_LINE.match("Traceback (most recent call last):")


@pytest.mark.slow
def test_recommend_offline_default_shows_titles():
    from recsys_fast.data.synthetic import generate

    r = run_recommend()
    check_output(r, set(generate("100k").items["title"]))


@pytest.mark.slow
@pytest.mark.realdata
def test_recommend_real_ml100k_shows_titles():
    path = real_path("ml-100k")
    from recsys_fast.data.movielens import load_ml100k

    r = run_recommend("--dataset", "ml-100k", "--path", str(path))
    titles = set(load_ml100k(path).items["title"])
    check_output(r, titles)
    assert "Star Wars (1977)" in r.stdout or "ml-100k: 943 users" in r.stdout
