"""Every command line in README.md and bench/README.md runs, at the smallest scale, in a temp
folder, so a documented command cannot crash unnoticed.

Commands run in document order in one temp folder per README (``report`` finds what ``bench``
wrote). Scales become ``tiny`` (``100k`` for ``data synth``), ``bench`` gets ``--quick``,
outputs go to the temp folder, ``/data/<set>`` becomes the real data set under
``$RECSYS_FAST_SHARED``. The few lines that cannot run here are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "bench/README.md")
COMMANDS = ("recsys-fast", "pytest", "python", "asv", "pip")
SCALE_WORDS = re.compile(r"^(tiny|100k|1m|10m|25m|100m|1b)(,(tiny|100k|1m|10m|25m|100m|1b))*$")

SKIP = [
    (re.compile(r"^pip install"), "installs packages: CI's own install step covers it"),
    (re.compile(r"^python -m pytest\b"), "the test command itself"),
    (re.compile(r"(^|\s)asv\s"), "asv builds a virtualenv per commit and runs every benchmark in its "
                            "own process: minutes, too slow for the test suite"),
    (re.compile(r"--resume \d{8}T"), "an example run name"),
    (re.compile(r"^recsys-fast data fetch\b"), "downloads from GroupLens (no network here); "
                                              "fetch is tested against a local server in "
                                              "test_download.py"),
    (re.compile(r"^recsys-fast gate\b"), "times two revisions (minutes); test_gate.py runs the "
                                         "gate end to end on a throwaway clone"),
    (re.compile(r"^recsys-fast compare results/m/"), "placeholder file names; test_report.py "
                                                     "runs compare on two real files"),
    (re.compile(r"--benchmark-compare-fail"), "a noise-sensitive pass/fail gate on timings, not "
                                              "a command that can be asserted to succeed"),
]


def _lines(doc: str) -> list[str]:
    text = (REPO / doc).read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            line = raw.split("  #")[0].strip()
            words = line.split()
            first = next((w for w in words if "=" not in w), "")
            if line and not line.startswith("#") and first in COMMANDS:
                out.append(line)
    return out


PARAMS = [pytest.param(doc, n, line, id=f"{doc}:{n}:{line[:50]}")
          for doc in DOCS for n, line in enumerate(_lines(doc))]


def _skip_reason(line: str) -> str | None:
    for pattern, reason in SKIP:
        if pattern.search(line):
            return reason
    return None


def _rewrite(line: str, tmp: Path, shared: Path) -> tuple[list[list[str]], dict]:
    """The command(s) to run and extra environment variables."""
    env: dict[str, str] = {}
    cmds = []
    for part in line.split("&&"):
        words = shlex.split(part)
        while words and "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            env[key] = "tiny" if key == "RECSYS_FAST_BENCH_SCALES" else value
        out = []
        for w in words:
            if w.startswith("/data/"):
                path = shared / w.removeprefix("/data/")
                if not path.exists():
                    pytest.skip(f"real data set {path.name} not under RECSYS_FAST_SHARED")
                w = str(path)
            elif w.startswith("/tmp/"):
                w = str(tmp / w.removeprefix("/tmp/"))
            out.append(w)
        words = out
        if words[:2] == ["recsys-fast", "bench"] and "--list" not in words:
            if "--scale" in words:
                words[words.index("--scale") + 1] = "tiny"
            else:
                words += ["--scale", "tiny"]
            words += ["--quick", "--out", str(tmp / "results"), "--no-progress"]
        elif words[:2] == ["recsys-fast", "report"]:
            words += ["--out", str(tmp / "results")]
        elif words[:3] == ["recsys-fast", "data", "synth"]:
            if SCALE_WORDS.match(words[3]):
                words[3] = "100k"
        elif words[:1] == ["pytest"]:
            words = [sys.executable, "-m", "pytest", *[str(REPO / w) if w.startswith("bench/")
                                                        else w for w in words[1:]],
                     "-q", "-p", "no:cacheprovider"]
            env.setdefault("RECSYS_FAST_BENCH_SCALES", "tiny")
            env.setdefault("RECSYS_FAST_BENCH_ROUNDS", "1")
        if words[:1] == ["recsys-fast"]:
            words = [sys.executable, "-m", "recsys_fast.cli", *words[1:]]
        cmds.append(words)
    return cmds, env


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    return {doc: tmp_path_factory.mktemp(doc.replace("/", "_")) for doc in DOCS}


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "n", "line"), PARAMS)
def test_documented_command_runs(doc, n, line, workdirs):
    reason = _skip_reason(line)
    if reason:
        pytest.skip(reason)
    tmp = workdirs[doc]
    shared = Path(os.environ.get("RECSYS_FAST_SHARED") or REPO.parent / "shared" / "datasets")
    cmds, extra = _rewrite(line, tmp, shared)
    env = {**os.environ, **extra, "RECSYS_FAST_MACHINE_ID": "readme-test",
           "RECSYS_FAST_TRIAD_BYTES": "8M", "PYTHONPATH": str(REPO)}
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, (f"`{line}` -> {shlex.join(cmd)} exited "
                                      f"{proc.returncode}\n{proc.stdout[-3000:]}\n"
                                      f"{proc.stderr[-3000:]}")
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_every_documented_command_is_run_or_skipped_with_a_reason():
    """The extraction sees the README's main commands (so the test above is not vacuous)."""
    lines = [line for doc in DOCS for line in _lines(doc)]
    assert any(line.startswith("recsys-fast bench") for line in lines)
    assert any(line.startswith("recsys-fast report") for line in lines)
    assert any(line.startswith("recsys-fast data synth") for line in lines)
    run = [line for line in lines if _skip_reason(line) is None]
    assert len(run) >= 10, run
