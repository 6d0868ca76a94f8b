"""The asv suites (``bench/asv``): metrics asv reads the right way round, a build that works,
visible skip reasons, and a peak-memory figure that is the kernel's, not the interpreter's."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from recsys_fast.harness.cases.registry import default_registry
from recsys_fast.harness.run import runner

REPO = Path(__file__).resolve().parents[1]
ASV_DIR = REPO / "bench" / "asv"


def _load_suite():
    """The suite package under a private name (its folder is called ``asv``, like asv itself)."""
    name = "recsys_fast_asv_suite_under_test"
    spec = importlib.util.spec_from_file_location(
        name, ASV_DIR / "__init__.py", submodule_search_locations=[str(ASV_DIR)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[name] = pkg
    spec.loader.exec_module(pkg)
    mods = {p.stem: importlib.import_module(f"{name}.{p.stem}") for p in ASV_DIR.glob("*.py")
            if p.stem != "__init__"}
    classes = [cls for m in mods.values() for n, cls in vars(m).items()
               if isinstance(cls, type) and not n.startswith("_") and getattr(cls, "kernel", "")]
    return mods, classes


MODS, CLASSES = _load_suite()
common, skips = MODS["common"], MODS["skips"]


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(runner, "gpu_available", lambda: False)
    monkeypatch.setattr(runner, "gpu_unavailable_reason", lambda: "faked: no CUDA device")


def _asv_conf() -> dict:
    """asv.conf.json (asv allows // comments, JSON does not)."""
    text = (REPO / "asv.conf.json").read_text()
    return json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))


def test_every_kernel_has_one_class():
    assert sorted(c.kernel for c in CLASSES) == sorted(default_registry().kernels)


def test_no_metric_asv_would_read_upside_down():
    """asv (continuous, compare) treats every benchmark as lower-is-better: a throughput would
    turn a speed-up into 'PERFORMANCE DECREASED'. peakmem_ would measure the interpreter."""
    for cls in CLASSES:
        names = [n for n in dir(cls) if re.match(r"(time|track|peakmem|mem|timeraw)_", n)]
        assert "time_kernel" in names, cls
        for n in names:
            assert not n.startswith(("peakmem_", "mem_")), (cls, n)
            if n.startswith("track_"):
                unit = getattr(getattr(cls, n), "unit", None)
                assert unit in common.LOWER_IS_BETTER_UNITS, (cls, n, unit)
                assert not re.search(r"per_s|gflop|ops|throughput", n), (cls, n)


def test_asv_build_does_not_collect_dependency_wheels():
    conf = _asv_conf()
    builds = conf["build_command"]
    assert any("pip wheel" in c and "--no-deps" in c for c in builds), builds
    # the project is reinstalled per commit without reinstalling its dependencies
    assert any("--force-reinstall" in c and "--no-deps" in c for c in conf["install_command"])
    assert conf["benchmark_dir"] == "bench/asv"


def test_documented_history_command_saves_results():
    """`asv run --quick` saves nothing; the documented history commands pin a commit."""
    for doc in ("README.md", "bench/README.md", "asv.conf.json"):
        text = (REPO / doc).read_text()
        code = ("\n".join(re.findall(r"^\s*//.*$", text, re.M)) if doc.endswith(".json")
                else "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S)))
        runs = re.findall(r"asv run [^\n]*", code)
        assert runs, doc
        assert not any("--quick" in r for r in runs), (doc, runs)
        assert any("--set-commit-hash" in r for r in runs), (doc, runs)


def test_skip_listing_gives_one_reason_per_skipped_combination(no_gpu, monkeypatch):
    monkeypatch.delenv("RECSYS_FAST_ASV_FULL", raising=False)
    monkeypatch.delenv("RECSYS_FAST_BENCH_SCALES", raising=False)
    lines = skips.skip_lines(["cosine_topk"])
    combos = list(common.combinations(["cosine_topk"]))
    assert len(set(lines)) == len(lines) and len(lines) < len(combos)
    by_combo = {tuple(line.split(":", 1)[0].split()): line.split(": ", 1)[1] for line in lines}
    assert by_combo[("cosine_topk", "naive", "gpu", "100k")] == "no case cosine_topk/naive/gpu"
    assert "RECSYS_FAST_ASV_FULL" in by_combo[("cosine_topk", "optimised", "cpu", "25m")]
    assert "faked: no CUDA device" in by_combo[("cosine_topk", "optimised", "gpu", "100k")]
    assert ("cosine_topk", "optimised", "cpu", "100k") not in by_combo  # it runs
    everything = skips.skip_lines(["cosine_topk"], show_all=True)
    assert len(everything) == len(combos)
    assert "cosine_topk optimised cpu 100k: runs" in everything


def test_skip_reasons_are_what_setup_raises(no_gpu, monkeypatch):
    """For every combination the listing skips, asv's setup raises NotImplementedError with
    the same reason (tiny-scale data is never built: all suite scales are disabled)."""
    monkeypatch.setenv("RECSYS_FAST_BENCH_SCALES", "tiny")
    cls = next(c for c in CLASSES if c.kernel == "weighted_rating")
    for kernel, impl, backend, scale in common.combinations([cls.kernel]):
        reason = common.why_skipped(kernel, impl, backend, scale)
        assert reason, (impl, backend, scale)
        with pytest.raises(NotImplementedError) as exc:
            cls().setup(impl, backend, scale)
        assert str(exc.value) == reason


def test_skip_script_runs_and_rejects_an_unknown_kernel():
    proc = subprocess.run([sys.executable, str(ASV_DIR / "skips.py"), "csr_build"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^csr_build naive gpu 100k: no case csr_build/naive/gpu$", proc.stdout,
                     re.M), proc.stdout
    assert "combinations skipped here" in proc.stderr
    bad = subprocess.run([sys.executable, str(ASV_DIR / "skips.py"), "no_such_kernel"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 2 and "unknown kernel 'no_such_kernel'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _bench_with(run) -> object:
    bench = common._KernelBenchmark()
    bench.case, bench.state = SimpleNamespace(run=run), None
    return bench


def test_track_peak_bytes_is_what_the_call_allocates():
    """64 MiB touched inside the call reads as about 64 MiB; a call that allocates nothing
    reads as (nearly) nothing, though the interpreter holds hundreds of MiB."""
    n = 64 << 20

    def allocate(_state):
        a = np.ones(n // 8)
        return float(a[::4096].sum())

    big = _bench_with(allocate).track_peak_bytes("optimised", "cpu", "tiny")
    small = _bench_with(lambda _s: 1 + 1).track_peak_bytes("optimised", "cpu", "tiny")
    assert 0.9 * n <= big <= 1.5 * n, big
    assert 0 <= small < 8 << 20, small
    assert common._KernelBenchmark.track_peak_bytes.unit == "bytes"


def test_track_peak_bytes_of_a_real_case(no_gpu):
    """A registered case at the tiny scale, through asv's setup: a plausible positive figure."""
    cls = next(c for c in CLASSES if c.kernel == "cf_course_user")
    bench = cls()
    bench.setup("optimised", "cpu", "tiny")
    try:
        peak = bench.track_peak_bytes("optimised", "cpu", "tiny")
    finally:
        bench.teardown("optimised", "cpu", "tiny")
    assert isinstance(peak, int) and 0 < peak < 1 << 30, peak
