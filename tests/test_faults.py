"""Fault injection: crashes, hangs, signals, full disks, concurrent runs and hostile results files
must never lose finished work, never write outside their folder, and never pass silently.

The runs here use a small registry of fast toy cases (``fault_registry``) run in isolated
workers, as ``recsys-fast bench`` runs them; the signal tests drive the real CLI in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recsys_fast import bench_cli as cli
from recsys_fast import results_store as results
from recsys_fast.errors import DataFormatError
from recsys_fast.harness import report
from recsys_fast.harness.cases.registry import Case, Registry, Verdict
from recsys_fast.harness.run import bench
from recsys_fast.harness.run.runner import RunSettings
from recsys_fast.results_store import journal

TESTS = Path(__file__).resolve().parent
FAST = RunSettings(repeat=3, min_rounds=2, max_time=0.3, case_timeout=20)
SLOW_KERNELS = ("slow_a", "slow_b", "slow_c", "slow_d")


def _sum_setup(ctx, scale):
    return {"n": 20_000, "scale": scale}


def _check(ctx, st, result):
    ref = ctx.naive_reference("sum", st["scale"])
    return Verdict("equal" if ref == result else f"mismatch: {result} vs {ref}", "naive")


def _kill_self(st):
    os.kill(os.getpid(), signal.SIGKILL)


def _hang(st):
    time.sleep(3600)


def _alloc(st):
    # 32 MB result, of which the memory probe must see at least 15 MiB (a 16 MB result left
    # 0.26 MiB for baseline noise, and one CI rehearsal measured 15.0 MiB - 53 KB)
    return np.ones(st["n"] * 200)


def fault_registry() -> Registry:
    reg = Registry(factory="test_faults:fault_registry")
    reg.add(Case("sum", "naive", "cpu", _sum_setup, lambda st: sum(range(st["n"]))))
    reg.add(Case("sum", "optimised", "cpu", _sum_setup,
                 lambda st: int(np.arange(st["n"]).sum()), check=_check))
    reg.add(Case("sum", "scipy", "cpu", _sum_setup, _kill_self, check=_check))  # crashes
    reg.add(Case("sum", "sklearn", "cpu", _sum_setup,
                 lambda st: int(np.add.reduce(np.arange(st["n"]))), check=_check))
    reg.add(Case("hang", "optimised", "cpu", _sum_setup, _hang))
    reg.add(Case("alloc", "naive", "cpu", _sum_setup, _alloc))
    for k in SLOW_KERNELS:
        # slow enough that a signal sent after the first group lands before the last ends,
        # even on a loaded machine
        reg.add(Case(k, "optimised", "cpu", _sum_setup, lambda st: time.sleep(0.4)))
    return reg


def _run(tmp_path, kernels, **kw):
    kw.setdefault("settings", FAST)
    return bench.run_bench(scales=["tiny"], kernels=kernels, registry=fault_registry(),
                           out_dir=tmp_path, gemm_n=64, progress=False, **kw)


@pytest.fixture(autouse=True)
def _machine(monkeypatch):
    monkeypatch.setenv("RECSYS_FAST_MACHINE_ID", "fault-box")
    monkeypatch.setenv("RECSYS_FAST_TRIAD_BYTES", "4M")  # a quick (meaningless) bandwidth probe
    # Ctrl-C as a user's shell delivers it, whatever handler earlier tests' libraries left
    # (a handler is reset in the CLI children at exec; an ignored SIGINT would be inherited)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


# -- crashes and hangs ---------------------------------------------------------------------
def test_a_worker_killed_by_a_signal_is_one_error_and_the_rest_complete(tmp_path):
    data, path = _run(tmp_path, ["sum"])
    by = {c["impl"]: c for c in data["cases"]}
    assert by["scipy"]["status"] == "error"
    assert "SIGKILL" in by["scipy"]["error"] and "first call" in by["scipy"]["error"]
    for impl in ("naive", "optimised", "sklearn"):
        assert by[impl]["status"] == "ok", by[impl]
    assert by["optimised"]["verdict"] == "equal"
    assert by["sklearn"]["verdict"] == "equal"  # its reference was rebuilt in the new worker
    assert path.exists() and not list(tmp_path.rglob("*.partial.jsonl"))


def test_a_hang_is_cut_at_the_case_timeout(tmp_path):
    t0 = time.monotonic()
    data, _ = _run(tmp_path, ["hang", "sum"],
                   settings=RunSettings(repeat=2, min_rounds=1, max_time=0.2, case_timeout=3))
    assert time.monotonic() - t0 < 60
    hang = next(c for c in data["cases"] if c["kernel"] == "hang")
    assert hang["status"] == "error" and "timed out after 3 s" in hang["error"]
    assert any(c["kernel"] == "sum" and c["status"] == "ok" for c in data["cases"])


def test_peak_memory_of_an_allocating_kernel_is_not_zero(tmp_path):
    data, _ = _run(tmp_path, ["alloc"])
    (row,) = data["cases"]
    assert row["status"] == "ok"
    assert row["peak_rss_delta_bytes"] >= 15 * 2**20, row["peak_rss_delta_bytes"]
    assert row["extra"]["memory_method"].startswith(("vmhwm", "sampling"))


def test_every_ratio_has_an_interval_from_interleaved_rounds(tmp_path):
    data, _ = _run(tmp_path, ["sum"])
    rows = {c["impl"]: c for c in data["cases"] if c["status"] == "ok"}
    assert rows["naive"]["interleaved"] and rows["naive"]["worker"] == rows["sklearn"]["worker"]
    assert data["ratios"]
    for r in data["ratios"]:
        assert r["lo"] <= r["value"] <= r["hi"] and isinstance(r["significant"], bool)
    naive_opt = next(r for r in data["ratios"] if r["kind"] == "naive_to_optimised")
    assert naive_opt["value"] > 1 and naive_opt["n_baseline"] >= 2


# -- signals, resume -----------------------------------------------------------------------
def _cli(tmp_path, *args) -> subprocess.Popen:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_faults; "
            "import recsys_fast.harness.cases.registry as r; "
            "r.default_registry = test_faults.fault_registry; "
            "from recsys_fast.bench_cli import main; sys.exit(main(sys.argv[2:]))")
    env = dict(os.environ, RECSYS_FAST_MACHINE_ID="fault-box", RECSYS_FAST_TRIAD_BYTES="4M")
    return subprocess.Popen([sys.executable, "-c", code, str(TESTS), "bench", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(folder: Path, n: int, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for j in folder.rglob("*.partial.jsonl"):
            if j.read_text().count('"type":"group_done"') >= n:
                return j
        time.sleep(0.05)
    raise AssertionError("the run journaled nothing")


# SIGTERM takes SIGINT's path (one handler); it runs in the slow set
@pytest.mark.parametrize("signum", [signal.SIGINT,
                                    pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_an_interrupted_run_keeps_its_cases_and_resumes(tmp_path, signum):
    kernels = ",".join(SLOW_KERNELS)
    proc = _cli(tmp_path, "--kernels", kernels, "--scale", "tiny", "--quick", "--out",
                str(tmp_path), "--no-progress")
    j = _wait_for_rows(tmp_path, 1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "finished case(s) kept in" in err
    assert not list((tmp_path / "fault-box").glob("*.json"))  # nothing looks finished
    state = journal.Journal(j).state()
    assert state.interruptions == 1 and len(state.done) >= 1
    kept = {(r["kernel"], r["impl"]): r["times_s"] for r in state.rows}
    run = j.name.removesuffix(journal.SUFFIX)
    proc = _cli(tmp_path, "--resume", run, "--out", str(tmp_path), "--no-progress")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (final,) = (tmp_path / "fault-box").glob("*.json")
    assert final.name == f"{run}.json" and not j.exists()
    doc = results.load_results(final)
    assert {c["kernel"] for c in doc["cases"]} == set(SLOW_KERNELS)
    for c in doc["cases"]:  # finished groups were kept as measured, not re-run
        if (c["kernel"], c["impl"]) in kept:
            assert c["times_s"] == kept[(c["kernel"], c["impl"])]
    assert report.write_report([final], tmp_path / "report").exists()


def test_a_torn_last_journal_line_is_ignored_and_a_bad_middle_line_named(tmp_path):
    j = journal.Journal.create(tmp_path, {"env": {}, "settings": {}, "selection": {}})
    j.append({"type": "group_done", "kernel": "k", "scale": "tiny"})
    with open(j.path, "a") as fh:
        fh.write('{"type": "row", "ro')  # the writer died mid-line
    assert journal.Journal(j.path).state().done == {("k", "tiny")}
    with open(j.path, "a") as fh:
        fh.write('\n{"type": "group_done", "kernel": "x", "scale": "tiny"}\n')
    with pytest.raises(DataFormatError, match="line 3"):
        journal.Journal(j.path).events()


def test_an_append_after_a_torn_line_cuts_the_fragment_off(tmp_path):
    """Resuming after a kill mid-line: the next event starts on a line of its own, and every
    complete event (the fragment's excepted) reads back."""
    j = journal.Journal.create(tmp_path, {"env": {}, "settings": {}, "selection": {}})
    j.append({"type": "group_done", "kernel": "k", "scale": "tiny"})
    with open(j.path, "a") as fh:
        fh.write('{"type": "row", "ro')  # the writer died mid-line
    j.append({"type": "group_done", "kernel": "x", "scale": "tiny"})
    j.append({"type": "group_done", "kernel": "y", "scale": "tiny"})
    events = journal.Journal(j.path).events()
    assert [e.get("kernel") for e in events] == [None, "k", "x", "y"]
    assert journal.Journal(j.path).state().done == {("k", "tiny"), ("x", "tiny"), ("y", "tiny")}
    assert '"ro' not in j.path.read_text()


# -- full disk, concurrent writers -----------------------------------------------------------
def test_a_full_disk_at_the_end_keeps_the_journal_and_resume_writes_it(tmp_path, monkeypatch,
                                                                      capsys):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "write_new", full)
    with pytest.raises(bench.ResultsWriteError, match="No space left") as err:
        _run(tmp_path, ["sum"])
    assert err.value.data is not None and len(err.value.data["cases"]) == 4
    (j,) = tmp_path.rglob("*.partial.jsonl")
    assert '"type":"write_failed"' in j.read_text()
    monkeypatch.undo()
    monkeypatch.setenv("RECSYS_FAST_MACHINE_ID", "fault-box")
    data, path = bench.run_bench(resume=j.name.removesuffix(journal.SUFFIX), out_dir=tmp_path,
                                 registry=fault_registry(), progress=False)
    assert path.exists() and not j.exists() and len(data["cases"]) == 4


def test_a_journal_write_failure_stops_with_one_message(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = journal.Journal.append

    def flaky(self, event):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, event)

    monkeypatch.setattr(journal.Journal, "append", flaky)
    with pytest.raises(bench.ResultsWriteError, match="cannot write the run journal"):
        _run(tmp_path, ["sum"])


def test_concurrent_writers_never_lose_a_file(tmp_path):
    doc = results.build_results([], machine={}, machine_id="m", software={}, blas=[],
                                thread_env={}, gemm_peak={}, git=None, settings={},
                                data_sources={})
    code = ("import sys, json; from recsys_fast import results_store as results; "
            "doc = json.loads(sys.argv[1]); results.write_results(doc, sys.argv[2])")
    procs = [subprocess.Popen([sys.executable, "-c", code, json.dumps(doc), str(tmp_path)])
             for _ in range(6)]
    assert all(p.wait(60) == 0 for p in procs)
    assert len(list((tmp_path / "m").glob("*.json"))) == 6
    same = dict(doc, run="fixed-name")
    results.write_results(same, tmp_path)
    with pytest.raises(FileExistsError):
        results.write_results(same, tmp_path, name="fixed-name")


def test_newest_results_are_chosen_by_recorded_time_not_name(tmp_path):
    base = results.build_results([], machine={}, machine_id="m", software={}, blas=[],
                                 thread_env={}, gemm_peak={}, git=None, settings={},
                                 data_sources={})
    results.write_results(dict(base, created="2026-01-01T00:00:02+00:00"), tmp_path,
                          name="20260101T000000Z")
    results.write_results(dict(base, created="2026-01-01T00:00:01+00:00"), tmp_path,
                          name="20260101T000000Z-2")
    (newest,) = results.latest_results(tmp_path)
    assert newest.name == "20260101T000000Z.json"


# -- empty runs ------------------------------------------------------------------------------
def test_an_all_skipped_run_writes_nothing_and_fails(tmp_path, capsys):
    code = cli.main(["bench", "--kernels", "cosine_topk", "--backend", "gpu", "--scale", "tiny",
                     "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing ran" in err and "gpu backend unavailable" in err
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.jsonl"))


def _main(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code)


@pytest.mark.parametrize("argv", [["--scale", ""], ["--scale", ","], ["--repeat", "0"],
                                  ["--repeat", "-3"], ["--case-timeout", "inf"],
                                  ["--max-time", "0"], ["--max-time", "nan"],
                                  ["--ml100k", "/does/not/exist"],
                                  ["--resume", "20990101T000000Z-000000"]])
def test_bench_misuse_is_one_line(tmp_path, capsys, argv):
    assert _main(["bench", *argv, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" in err.strip().splitlines()[-1]
    assert not list(tmp_path.rglob("*.json"))


# -- hostile results files -------------------------------------------------------------------
def _doc(**kw) -> dict:
    doc = results.build_results(
        [{"kernel": "k", "impl": "naive", "backend": "cpu", "scale": "tiny", "status": "ok",
          "median_s": 1.0, "times_s": [1.0]}],
        machine={}, machine_id="m", software={}, blas=[], thread_env={}, gemm_peak={},
        git=None, settings={}, data_sources={})
    doc.update(kw)
    return doc


@pytest.mark.parametrize(("change", "message"), [
    ({"machine_id": "../../escape"}, "machine_id"),
    ({"machine_id": "box*"}, "machine_id"),
    ({"machine_id": "a/b"}, "machine_id"),
    ({"machine_id": 7}, "machine_id"),
    ({"run": "../x"}, "run"),
    ({"created": 5}, "'created' must be a string"),
    ({"created": "yesterday"}, "not an ISO time"),
    ({"gemm_peak": {"cpu_float64_gflops": "fast"}}, "gemm_peak.cpu_float64_gflops"),
    ({"cases": {"a": 1}}, "'cases' must be a list"),
])
def test_hostile_results_files_are_refused_before_anything_is_written(tmp_path, change,
                                                                       message):
    bad = tmp_path / "in" / "bad.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(_doc(**change)))
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match=message):
        report.write_report([bad], out)
    assert not out.exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("case_change", [{"median_s": "1"}, {"median_s": 1e400},
                                         {"times_s": [1, "x"]}, {"extra": []},
                                         {"kernel": ["k"]}])
def test_wrong_field_types_in_cases_are_one_line(tmp_path, capsys, case_change):
    doc = _doc()
    doc["cases"][0].update(case_change)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc).replace("Infinity", "1e400"))
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "Traceback" not in err


def test_report_refuses_to_replace_a_readme_it_did_not_write(tmp_path, capsys):
    src = tmp_path / "r.json"
    src.write_text(json.dumps(_doc()))
    mine = tmp_path / "README.md"
    mine.write_text("# My project\n\nhand-written\n")
    assert cli.main(["report", str(src), "--out", str(tmp_path), "--no-plots"]) == 2
    assert "not written by `recsys-fast report`" in capsys.readouterr().err
    assert mine.read_text().startswith("# My project")
    assert cli.main(["report", str(src), "--out", str(tmp_path / "new"), "--no-plots"]) == 0
    again = cli.main(["report", str(src), "--out", str(tmp_path / "new"), "--no-plots"])
    assert again == 0  # its own README is replaced


def test_report_into_a_file_or_read_only_place_is_one_line(tmp_path, capsys):
    src = tmp_path / "r.json"
    src.write_text(json.dumps(_doc()))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["report", str(src), "--out", str(afile), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "afile" in err and "Traceback" not in err


def test_ctrl_c_turned_into_another_exception_is_still_an_interrupt():
    """A C extension (TensorFlow) may surface Ctrl-C as SystemError: the in-process runner
    must stop, not record the case as an error and go on."""
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import run_group

    def run(st):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise SystemError("error return without exception set") from None

    reg = Registry()
    reg.add(Case("k", "optimised", "cpu", _sum_setup, run))
    reg.add(Case("k", "scipy", "cpu", _sum_setup, lambda st: 0))
    with pytest.raises(KeyboardInterrupt):
        run_group(reg.select(), "tiny", CaseContext(reg), FAST)


def test_ctrl_c_is_an_interrupt_under_a_library_sigint_handler():
    """A library may have put its own SIGINT handler in place (one that only notes the
    signal): the runner still stops on Ctrl-C, and that handler still sees it."""
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import run_group

    seen = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))

    def run(st):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        return 0

    reg = Registry()
    reg.add(Case("k", "optimised", "cpu", _sum_setup, run))
    with pytest.raises(KeyboardInterrupt):
        run_group(reg.select(), "tiny", CaseContext(reg), FAST)
    assert seen == [signal.SIGINT]


def test_a_journal_cut_at_every_byte_of_its_last_line_resumes(tmp_path):
    """Fault injection: the journal truncated at each byte offset of its last line reads back,
    and the next append keeps every whole event (a whole event missing only its newline
    included), sets a fragment aside in ``.torn`` and leaves a readable journal."""
    src = journal.Journal.create(tmp_path / "src", {"env": {}, "settings": {}, "selection": {}})
    src.append({"type": "group_done", "kernel": "k", "scale": "tiny"})
    src.append({"type": "row", "row": {"kernel": "k2", "impl": "optimised", "times_s": [0.1]}})
    full = src.path.read_bytes()
    start = full[:-1].rfind(b"\n") + 1  # the last line's first byte
    for cut in range(start, len(full) + 1):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        j = journal.Journal(folder / src.path.name)
        j.path.write_bytes(full[:cut])
        before = len(j.events())
        whole = cut >= len(full) - 1  # the last event complete (its newline may be missing)
        assert before == (3 if whole else 2), cut
        assert (j.torn_tail() == b"") == (whole or cut == start), cut
        j.append({"type": "group_done", "kernel": "next", "scale": "tiny"})
        events = j.events()
        assert len(events) == before + 1 and events[-1]["kernel"] == "next", cut
        torn = j.torn_path
        assert torn.exists() == (not whole and cut > start), cut
        if torn.exists():
            assert full[start:cut] in torn.read_bytes()
