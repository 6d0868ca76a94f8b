"""The results committed under ``results/`` are ones a reader can trust: each file loads, comes
from a clean tree (a run with uncommitted changes cannot be reproduced from its commit), holds
an interval for every ratio, and the report's README was rendered from those files."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_fast import results_store as results

ROOT = Path(__file__).resolve().parents[1] / "results"
FILES = sorted(p for sub in ROOT.iterdir() if sub.is_dir() and sub.name not in results.NOT_MACHINES
               for p in sub.glob("*.json")
               if not p.name.startswith(results.QUALITY_PREFIX)) if ROOT.is_dir() else []


def test_there_are_committed_results():
    assert FILES, "results/ holds no results files"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_committed_results_come_from_clean_trees(path):
    data = results.load_results(path)
    git = data.get("git") or {}
    assert git.get("commit"), f"{path.name}: no commit recorded"
    assert git.get("dirty") is False, f"{path.name}: measured with uncommitted changes"
    assert data["schema_version"] == results.SCHEMA_VERSION
    assert data["bandwidth"] and data["gemm_peak"]
    for r in data["ratios"]:
        assert "lo" in r and "hi" in r and r["lo"] <= r["value"] <= r["hi"], r


def test_no_unfinished_run_is_committed():
    assert not list(ROOT.rglob("*.partial.jsonl"))


def test_committed_readme_names_every_committed_run():
    text = (ROOT / "README.md").read_text()
    used = [p for p in FILES if f"{p.parent.name}/{p.name}" in text]
    assert used, "results/README.md was not rendered from the committed results"
