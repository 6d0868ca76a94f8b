"""``recsys-fast report``: results JSON -> README.md + PNG plots; bad or foreign input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys_fast import bench_cli as cli
from recsys_fast import results_store as results
from recsys_fast.errors import DataFormatError, RecsysFastError
from recsys_fast.harness import report
from recsys_fast.harness.cases.registry import Case, Registry, Verdict
from recsys_fast.harness.run.bench import run_bench
from recsys_fast.harness.run.runner import RunSettings
from recsys_fast.harness.stats.compare import speedups

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _registry() -> Registry:
    """naive (slow python), optimised (numpy) and a peer, on cpu and a gpu that is absent."""
    reg = Registry()

    def setup(ctx, scale):
        return {"n": {"tiny": 100_000, "100k": 300_000}[scale], "scale": scale}

    def check(ctx, st, result):
        ref = ctx.naive_reference("toy_sum", st["scale"])
        return Verdict("equal" if np.isclose(ref, result) else "mismatch: off", "naive")

    reg.add(Case("toy_sum", "naive", "cpu", setup, lambda st: float(sum(range(st["n"]))),
                 flops=lambda st: st["n"]))
    reg.add(Case("toy_sum", "optimised", "cpu", setup,
                 lambda st: float(np.arange(st["n"]).sum()), check=check,
                 flops=lambda st: st["n"]))
    reg.add(Case("toy_sum", "optimised", "gpu", setup, lambda st: 0.0, check=check))
    reg.add(Case("toy_sum", "scipy", "cpu", setup,
                 lambda st: float(np.add.reduce(np.arange(st["n"]))), check=check))
    reg.add(Case("toy_sum", "sklearn", "cpu", setup, lambda st: 0.0,
                 memory_estimate=lambda spec: 7 << 40))
    return reg


@pytest.fixture(scope="module")
def _made(tmp_path_factory) -> Path:
    from recsys_fast.harness.run import runner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "gpu_available", lambda: False)
        mp.setenv("RECSYS_FAST_MACHINE_ID", "test-machine")
        _data, path = run_bench(scales=["tiny", "100k"], registry=_registry(),
                                out_dir=tmp_path_factory.mktemp("made") / "results", gemm_n=64,
                                progress=False, settings=RunSettings(repeat=3, max_time=0.5))
    return path


@pytest.fixture
def results_file(_made, tmp_path) -> Path:
    """A fresh copy per test (tests add files next to it)."""
    path = tmp_path / "results" / _made.parent.name / _made.name
    path.parent.mkdir(parents=True)
    path.write_bytes(_made.read_bytes())
    return path


def test_speedups_between_rows(results_file):
    data = results.load_results(results_file)
    sp = speedups(data["cases"])
    assert {(s.kernel, s.scale) for s in sp["naive_to_optimised"]} == {
        ("toy_sum", "tiny"), ("toy_sum", "100k")}
    assert all(s.factor > 1 for s in sp["naive_to_optimised"])  # numpy beats a Python loop
    assert {s.baseline for s in sp["peers_to_ours"]} == {"scipy/cpu"}
    assert sp["cpu_to_gpu"] == []


def test_report_writes_readme_and_plots(results_file, tmp_path):
    out = tmp_path / "results"
    path = report.write_report([results_file], out)
    text = path.read_text()
    assert path == out / "README.md"
    lines = text.splitlines()
    # the summary opens the page; each machine's section gives machine, versions and date
    # before its long tables
    assert lines.index("## At a glance") < next(i for i, ln in enumerate(lines)
                                               if ln.startswith("|"))
    section = next(i for i, line in enumerate(lines) if line.startswith("## test-machine"))
    first_table = next(i for i, line in enumerate(lines) if i > section and line.startswith("|"))
    head = "\n".join(lines[section:first_table])
    for word in ("**Date:**", "**Machine:**", "**GPU:**", "**Software:**", "numpy",
                 "**BLAS:**", "**GEMM peak", "GFLOP/s"):
        assert word in head, word
    for section in ("### Naive → optimised", "### Ours → peers", "### CPU → GPU",
                    "### CPU → dask", "### All cases", "### Skipped and failed cases", "### Plots"):
        assert section in text, section
    assert "| toy_sum | tiny | cpu |" in text and "equal (vs naive)" in text
    assert "needs 7.0 TiB" in text and "gpu backend unavailable" in text
    assert str(out.resolve()) not in text and str(Path.home()) not in text  # no machine paths
    pngs = sorted((out / "plots").glob("*.png"))
    names = [p.name for p in pngs]
    assert any(n.endswith("_toy_sum.png") for n in names)
    assert any(n.endswith("_speedups.png") for n in names)
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5_000
        assert f"](plots/{p.name})" in text


def test_rerendering_removes_only_plots_the_report_recorded(results_file, tmp_path):
    """Deletion goes by the report's manifest, per machine: a plot it made earlier and no
    longer makes is removed; a look-alike it never made, another machine whose id shares the
    prefix, and manifest entries pointing elsewhere are left alone."""
    out = tmp_path / "results"
    plots = out / "plots"
    plots.mkdir(parents=True)
    data = json.loads(Path(results_file).read_text())
    mid = data["machine_id"]
    stale = plots / f"{mid}_gone_kernel.png"  # made by an earlier render, now superseded
    lookalike = plots / f"{mid}_19990101T000000Z_toy_sum.png"  # never recorded: not ours
    other = plots / f"{mid}-simulated-gpu_toy_sum.png"  # another machine, same prefix
    outside = tmp_path / "victim.png"
    for p in (stale, lookalike, other, outside):
        p.write_bytes(PNG_MAGIC)
    (plots / report.MANIFEST).write_text(json.dumps(
        {mid: [stale.name, "../victim.png"], f"{mid}-simulated-gpu": [other.name]}))
    text = report.write_report([results_file], out).read_text()
    assert not stale.exists()
    assert lookalike.exists() and other.exists() and outside.exists()
    linked = {p.name for p in plots.glob(f"{mid}_*.png")} - {lookalike.name}
    assert linked and all(f"](plots/{name})" in text for name in linked)
    manifest = json.loads((plots / report.MANIFEST).read_text())
    assert sorted(manifest[mid]) == sorted(linked)
    assert manifest[f"{mid}-simulated-gpu"] == [other.name]


def test_report_defaults_to_the_newest_file_per_machine(results_file, tmp_path):
    out = results_file.parents[1]
    older = results_file.with_name("20000101T000000Z.json")
    older.write_text(results_file.read_text())
    (out / "asv").mkdir()  # asv's own results folder is not a machine
    (out / "asv" / "benchmarks.json").write_text("{}")
    code = cli.main(["report", "--out", str(out), "--no-plots"])
    assert code == 0
    text = (out / "README.md").read_text()
    assert f"`test-machine/{results_file.name}`" in text and older.name not in text
    assert not (out / "plots").exists()


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "invalid JSON"),
    (json.dumps({"benchmarks": {}, "version": 2}), "not a recsys_fast results file"),
    (json.dumps([]), "top level is list"),
    ('{"schema": "recsys_fast.results", "created": "a", "created": "b"}',
     "invalid JSON: duplicate key 'created'"),
])
def test_malformed_or_foreign_json_names_the_file(tmp_path, content, message, capsys):
    bad = tmp_path / "foreign.json"
    bad.write_text(content)
    with pytest.raises(DataFormatError, match=message) as err:
        report.write_report([bad], tmp_path / "out")
    assert str(bad) in str(err.value)
    assert not (tmp_path / "out" / "README.md").exists()
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    err_text = capsys.readouterr().err
    assert "foreign.json" in err_text and "Traceback" not in err_text


def test_one_bad_file_among_good_ones_writes_nothing(results_file, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "recsys_fast.bench.results", "schema_version": 0}')
    with pytest.raises(DataFormatError, match="bad.json.*schema_version 0"):
        report.write_report([results_file, bad], tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_no_results_at_all(tmp_path):
    with pytest.raises(RecsysFastError, match="run `recsys-fast bench` first"):
        report.write_report([], tmp_path / "empty")


def test_report_of_a_file_with_only_skips_and_errors(tmp_path):
    doc = results.build_results(
        [{"kernel": "k", "impl": "naive", "backend": "cpu", "scale": "25m", "status": "skipped",
          "skipped_reason": "needs 39.1 GiB (memory budget 20.0 GiB)"},
         {"kernel": "k", "impl": "optimised", "backend": "cpu", "scale": "25m",
          "status": "error", "error": "timing: RuntimeError: boom"}],
        machine={"cpu_model": "x", "ram_bytes": 1, "gpu": {"gpu": None, "reason": "none"}},
        machine_id="m", software={"python": "3"}, blas=[], thread_env={}, gemm_peak={},
        git=None, settings={}, data_sources={})
    path = results.write_results(doc, tmp_path)
    text = report.write_report([path], tmp_path).read_text()
    assert "needs 39.1 GiB" in text and "RuntimeError: boom" in text
    assert "No kernel ran both naive and optimised in one run." in text


def test_runs_of_one_machine_merge_by_group_and_never_divide_across_runs(results_file):
    """`--scale 100k,1m` then `--scale 10m`: one table; a (kernel, scale) group comes whole from
    the newest run that measured it, and no ratio divides numbers of two runs."""
    first = json.loads(results_file.read_text())
    second = json.loads(results_file.read_text())
    second["created"] = "2999-01-01T00:00:00+00:00"
    tiny = [c for c in second["cases"] if c["scale"] == "tiny"]
    for c in tiny:
        c["median_s"] = c["median_s"] and 123.0
    second["cases"] = tiny + [dict(c, scale="10m") for c in tiny if c["impl"] == "optimised"]
    second["data_sources"] = {"10m": "synthetic 10m"}
    merged = report.merge_by_machine([(Path("b.json"), second), (Path("a.json"), first)])
    assert len(merged) == 1
    paths, doc = merged[0]
    assert [p.name for p in paths] == ["a.json", "b.json"]  # oldest first
    got = {(c["kernel"], c["impl"], c["backend"], c["scale"]): c for c in doc["cases"]}
    assert got[("toy_sum", "naive", "cpu", "tiny")]["median_s"] == 123.0
    assert {c["_run"] for c in doc["cases"] if c["scale"] == "tiny"} == {"R2"}
    assert {c["_run"] for c in doc["cases"] if c["scale"] == "100k"} == {"R1"}
    assert ("toy_sum", "optimised", "cpu", "10m") in got
    assert "10m" in doc["data_sources"]
    sp = speedups(doc["cases"])
    # 10m has no naive in its run: no ratio, although run R1 has naive rows at other scales
    assert {s.scale for s in sp["naive_to_optimised"]} == {"tiny", "100k"}
    assert all(s.run in ("R1", "R2") for s in sp["naive_to_optimised"])
    # a hand-made cross-run pair is refused
    a = dict(got[("toy_sum", "naive", "cpu", "100k")])
    b = dict(got[("toy_sum", "optimised", "cpu", "tiny")], scale="100k")
    assert a["_run"] != b["_run"] and speedups([a, b])["naive_to_optimised"] == []
    other = dict(second, machine_id="another-box")
    assert len(report.merge_by_machine([(Path("a.json"), first), (Path("c.json"), other)])) == 2


def test_compare_two_runs_marks_drift_and_intervals(results_file, tmp_path, capsys):
    """`recsys-fast compare A B`: per-case head/base ratio with an interval, labelled as an
    across-run comparison; a 3x slower copy reads as significantly slower."""
    slower = json.loads(results_file.read_text())
    for c in slower["cases"]:
        if c["status"] == "ok":
            c["times_s"] = [t * 3 for t in c["times_s"]]
            c["median_s"] *= 3
    other = tmp_path / "slower.json"
    other.write_text(json.dumps(slower))
    assert cli.main(["compare", str(results_file), str(other)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("across runs: drift not controlled")
    assert "GEMM peak" in out and "toy_sum" in out
    from recsys_fast.harness.stats.compare import compare_runs

    rows = compare_runs(results.load_results(results_file), slower)
    assert rows and all(abs(r["ratio"] - 3) < 1e-9 for r in rows)
    assert all(r["lo"] <= r["ratio"] <= r["hi"] for r in rows)
    assert "WARNING" not in out  # same data on both sides


def test_runs_on_different_data_are_flagged_in_compare_and_report(results_file, tmp_path,
                                                                   capsys):
    """Two runs whose scale 100k read different data: compare warns; the report names each
    source with its runs."""
    base = json.loads(results_file.read_text())
    base["data_sources"]["100k"] = "ml-100k (real MovieLens 100K); /a: u.data 1 bytes"
    other = dict(base, data_sources={**base["data_sources"],
                                     "100k": "synthetic 100k (recsys_fast.data.synthetic)"},
                 created="2099-01-01T00:00:00+00:00")
    other["cases"] = [dict(c, data="feedfacefeedface") for c in base["cases"]
                      if c["scale"] == "100k"]
    other["data_provenance"] = {**base["data_provenance"],
                                "100k": {"name": "synthetic-100k", "digest": "feedfacefeedface"}}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(base))
    b.write_text(json.dumps(other))
    assert cli.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: scale 100k: the runs read different data:" in out
    assert "its ratios compare different inputs" in out
    assert "DIFFERENT DATA" in out  # each row whose data digests differ
    same = dict(other, data_sources=base["data_sources"],
                data_provenance=base["data_provenance"])
    same["cases"] = [dict(c, data=base["data_provenance"]["100k"]["digest"])
                     for c in other["cases"]]
    same["data_sources"] = {**base["data_sources"], "100k": "described another way"}
    b.write_text(json.dumps(same))
    assert cli.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out  # the same digest: the same data, whatever the text says
    assert "WARNING" not in out and "DIFFERENT DATA" not in out
    only_tiny = dict(base, cases=[c for c in base["cases"] if c["scale"] == "tiny"])
    a.write_text(json.dumps(only_tiny))
    (tmp_path / "m").mkdir()
    for n, d in enumerate((only_tiny, other)):
        (tmp_path / "m" / f"r{n}.json").write_text(json.dumps(d))
    text = report.write_report(sorted((tmp_path / "m").glob("r*.json")), tmp_path / "out",
                               plots=False).read_text()
    assert "- **Data `100k`:** synthetic 100k" in text  # only the run shown at 100k counts
    base["cases"] = [c for c in base["cases"] if c["scale"] == "100k"]
    base["created"] = "2100-01-01T00:00:00+00:00"
    other["cases"] = [dict(c, kernel="toy_other") for c in other["cases"]]
    for n, d in enumerate((base, other)):
        (tmp_path / "m" / f"r{n}.json").write_text(json.dumps(d))
    text = report.write_report(sorted((tmp_path / "m").glob("r*.json")), tmp_path / "out",
                               plots=False).read_text()
    assert "**the runs read different data:**" in text


def test_a_run_without_a_data_digest_is_not_flagged_as_different():
    with_digest = {"data_sources": {"1m": "synthetic 1m, seed 0"},
                   "data_provenance": {"1m": {"digest": "63c13a4f3b3a0bf3"}}}
    without = {"data_sources": {"1m": "synthetic 1m (seed 0)"}}
    text = report.data_by_scale([("R1", without), ("R2", with_digest)])["1m"]
    assert "different data" not in text and "cannot be checked" in text
    assert "R1: synthetic 1m (seed 0)" in text and "R2: synthetic 1m, seed 0" in text
    other = {"data_sources": {"1m": "x"}, "data_provenance": {"1m": {"digest": "feed"}}}
    text = report.data_by_scale([("R1", without), ("R2", with_digest), ("R3", other)])["1m"]
    assert text.startswith("**the runs read different data:**")


def test_report_adds_the_quality_tables_of_the_eval_files(results_file, tmp_path):
    """Quality (``recsys-fast eval``) files under a machine folder are shown beside the speed
    tables, and are never taken as a speed run."""
    import shutil

    repo_results = Path(__file__).resolve().parents[1] / "results"
    quality = [p for p in sorted(repo_results.glob(f"*/{results.QUALITY_PREFIX}*.json"))
               if '"task": "rating"' in p.read_text()]
    if not quality:
        pytest.skip("no committed quality file with rating rows")
    out = tmp_path / "results"
    (out / quality[0].parent.name).mkdir(parents=True)
    shutil.copy(quality[0], out / quality[0].parent.name / quality[0].name)
    from recsys_fast.quality.report import report_sections

    text = report.write_report([results_file], out, extra_sections=report_sections).read_text()
    assert "## Quality" in text and "RMSE" in text
    assert "| toy_sum | tiny | cpu |" in text  # the speed tables are still there
    assert not any(p.name.startswith(results.QUALITY_PREFIX)  # never taken as a speed run
                   for p in results.latest_results(out))


def _dask_doc(rows: list[tuple[str, str, float, dict | None]], created: str) -> dict:
    """A results document of ``toy_sum/optimised`` rows: (backend, scale, median s, extra);
    eight rounds each, spread ±1 % around the median."""
    from datetime import datetime

    cases = []
    for backend, scale, med, extra in rows:
        times = [med * (1 + d) for d in (-0.01, 0.0, 0.01, 0.005, -0.005, 0.0, 0.002, -0.002)]
        cases.append({"kernel": "toy_sum", "impl": "optimised", "backend": backend,
                      "scale": scale, "status": "ok", "median_s": med, "iqr_s": med * 0.01,
                      "rounds": len(times), "times_s": times, "verdict": "equal",
                      "checked_against": "naive", "extra": extra or {}})
    return results.build_results(
        cases, machine={"cpu_model": "x", "ram_bytes": 1, "gpu": {"gpu": None, "reason": "none"}},
        machine_id="m", software={"python": "3"}, blas=[], thread_env={}, gemm_peak={},
        git=None, settings={}, data_sources={}, created=datetime.fromisoformat(created))


LOCAL = {"scheduler": "LocalCluster", "cluster_source": "LocalCluster", "n_workers": 2,
         "threads_per_worker": [1, 1], "worker_memory_limit_bytes": [1 << 30, 1 << 30]}
REMOTE = {"scheduler": "tcp://10.0.0.5:8786", "cluster_source": "scheduler address",
          "n_workers": 3, "threads_per_worker": [2, 2, 4]}


def _row(text: str, prefix: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


def test_cpu_to_dask_table_names_the_cluster_and_says_which_side_is_slower(tmp_path):
    doc = _dask_doc([("cpu", "tiny", 0.1, None), ("dask", "tiny", 0.2, LOCAL),
                     ("cpu", "100k", 0.9, None), ("dask", "100k", 0.3, REMOTE)],
                    "2030-01-01T00:00:00+00:00")
    path = results.write_results(doc, tmp_path / "in")
    sp = speedups(results.load_results(path)["cases"])["cpu_to_dask"]
    assert [(s.scale, round(s.factor, 6)) for s in sp] == [("tiny", 0.5), ("100k", 3.0)]
    text = report.write_report([path], tmp_path / "out", plots=False).read_text()
    assert "### CPU → dask" in text and "< 1 it is slower" in text
    header = _row(text, "| kernel | scale | impl | cpu | dask |")
    assert "dask vs cpu: speedup [95 % CI]" in header and "| cluster | run |" in header
    slow = _row(text, "| toy_sum | tiny | optimised | 100 ms | 200 ms |")
    assert "**0.5x** [" in slow and "(dask 2x slower)" in slow
    assert slow.endswith("| LocalCluster, 2 workers x 1 thread | R1 |")
    fast = _row(text, "| toy_sum | 100k | optimised | 900 ms | 300 ms |")
    assert "**3x** [" in fast and "slower" not in fast
    assert fast.endswith("| tcp://10.0.0.5:8786, 3 workers x 2/2/4 threads | R1 |")


def test_cpu_to_dask_ratio_is_never_formed_across_two_runs(tmp_path):
    """An older run with cpu and dask rows, a newer one with the cpu row only: the group comes
    whole from the newer run, so the table has no dask row; a hand-made cross-run pair is
    refused as for the other kinds."""
    old = _dask_doc([("cpu", "100k", 0.1, None), ("dask", "100k", 0.2, LOCAL)],
                    "2030-01-01T00:00:00+00:00")
    new = _dask_doc([("cpu", "100k", 0.4, None)], "2030-01-02T00:00:00+00:00")
    paths = [results.write_results(d, tmp_path / "in") for d in (old, new)]
    text = report.write_report(paths, tmp_path / "out", plots=False).read_text()
    section = text.split("### CPU → dask", 1)[1].split("###", 1)[0]
    assert "No dask case ran beside its cpu case." in section and "|" not in section
    cpu_new = dict(new["cases"][0], _run="R2")
    dask_old = dict(old["cases"][1], _run="R1")
    assert speedups([cpu_new, dask_old])["cpu_to_dask"] == []
    assert len(speedups([dict(cpu_new, _run="R1"), dask_old])["cpu_to_dask"]) == 1


def test_speedups_plot_has_bars_for_a_run_with_only_cpu_and_dask_cases(tmp_path):
    from recsys_fast.harness.report.plots import plot_speedups

    doc = _dask_doc([("cpu", "tiny", 0.1, None), ("dask", "tiny", 0.2, LOCAL)],
                    "2030-01-01T00:00:00+00:00")
    path = plot_speedups(doc, tmp_path / "speedups.png")
    assert path is not None and path.read_bytes()[:8] == PNG_MAGIC


def test_a_peer_computing_another_function_gets_no_speed_ratio(results_file, tmp_path):
    """A peer whose verdict is ``n/a`` (another function) is named, never divided by."""
    data = json.loads(results_file.read_text())
    for c in data["cases"]:
        if c["impl"] == "scipy":
            c["verdict"], c["checked_against"] = "n/a", "different function: quality only"
    path = tmp_path / "unlike" / results_file.parent.name / results_file.name
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    assert speedups(results.load_results(path)["cases"])["peers_to_ours"] == []
    text = report.write_report([path], tmp_path / "out", plots=False).read_text()
    assert "Not timed against ours (another function, compared on quality only): " \
           "`toy_sum` scipy." in text


def test_summary_rows_name_the_fastest_peer_and_the_quality(results_file):
    from recsys_fast.harness.report.summary import summary_rows

    data = results.load_results(results_file)
    slow_peer = [dict(c, impl="slowpeer", times_s=[t * 50 for t in c["times_s"]],
                      median_s=c["median_s"] * 50)
                 for c in data["cases"] if c["impl"] == "scipy" and c["status"] == "ok"]
    data["cases"] += slow_peer
    rows = summary_rows(data, lambda m, k, sc: f"q {m} {k} {sc}" if sc == "tiny" else "")
    by_scale = {r[1]: r for r in rows}
    assert set(by_scale) == {"tiny", "100k"}
    assert by_scale["tiny"][0] == "toy_sum" and by_scale["tiny"][2].endswith("]")
    assert by_scale["tiny"][3].endswith(" vs scipy")  # the fastest peer, not slowpeer
    assert by_scale["tiny"][6] == "q test-machine toy_sum tiny" and by_scale["100k"][6] == "-"
