"""Benchmark harness: registry, skip logic, runner, results files, CLI, and a smoke run of
every registered case (and of the asv / pytest-benchmark wrappers) at the tiny scale."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys_fast import bench_cli as cli
from recsys_fast import results_store as results
from recsys_fast.errors import DataFormatError, MemoryBudgetError
from recsys_fast.harness.cases.registry import (
    BACKENDS,
    SCALES,
    Case,
    Registry,
    SelectionError,
    Verdict,
    check_scales,
    default_registry,
)
from recsys_fast.harness.run import bench as bench_mod
from recsys_fast.harness.run import machine, runner
from recsys_fast.harness.run.context import CaseContext, scale_spec
from recsys_fast.harness.run.runner import RunSettings, run_case

REPO = Path(__file__).resolve().parents[1]
FAST = RunSettings(repeat=3, warmup=1, max_time=1.0)


# -- a toy registry: fast, no data -----------------------------------------------------------
def _toy_check(ctx, state, result):
    ref = ctx.naive_reference("toy", state["scale"])
    return Verdict("equal" if ref == result else f"mismatch: {result} vs {ref}", "naive")


def toy_registry() -> Registry:
    reg = Registry()
    reg.add_kernel("toy", "sum of 0..n-1")

    def setup(ctx, scale):
        return {"n": 20_000 if scale == "tiny" else 50_000, "scale": scale}

    reg.add(Case("toy", "naive", "cpu", setup, lambda st: sum(range(st["n"])),
                 flops=lambda st: st["n"], examples=lambda st: st["n"]))
    reg.add(Case("toy", "optimised", "cpu", setup,
                 lambda st: int(np.arange(st["n"], dtype=np.int64).sum()), check=_toy_check,
                 extra=lambda st, res: {"strategy": "numpy"}))
    reg.add(Case("toy", "optimised", "gpu", setup, lambda st: 0, check=_toy_check))
    reg.add(Case("toy", "scipy", "cpu", setup, lambda st: int(np.sum(np.arange(st["n"]))),
                 check=_toy_check))
    reg.add(Case("toy", "sklearn", "cpu", setup, lambda st: -1, check=_toy_check))

    def boom(st):
        raise RuntimeError("kernel exploded")

    reg.add(Case("broken", "optimised", "cpu", setup, boom))

    def missing(ctx, scale):
        import recsys_fast.no_such_module  # noqa: F401

    reg.add(Case("missing", "optimised", "cpu", missing, lambda st: 0))
    reg.add(Case("hungry", "naive", "cpu", setup, lambda st: 0,
                 memory_estimate=lambda spec: 42 << 40))
    reg.factory = "test_harness:toy_registry"  # isolated runs rebuild it in each worker
    return reg


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(runner, "gpu_available", lambda: False)
    monkeypatch.setattr(runner, "gpu_unavailable_reason", lambda: "faked: no CUDA device")


# -- registry ----------------------------------------------------------------------------------
def test_default_registry_has_every_kernel_once():
    reg = default_registry()
    for kernel in ("weighted_rating", "csr_build", "cf_course_user", "cf_course_item",
                   "cf_fixed_recommend", "cosine_distances", "cosine_topk", "tfidf_topk",
                   "dnn_epoch", "dnn_epoch_sampled", "dnn_pipeline"):
        cases = reg.select(kernels=[kernel])
        assert cases, kernel
        assert [c for c in cases if c.impl == "optimised" and c.backend == "cpu"], kernel
    keys = [c.key for c in reg]
    assert len(keys) == len(set(keys))
    assert all(c.backend in BACKENDS and c.role in ("naive", "optimised", "peer") for c in reg)
    # peers compared with ours on the similarity kernel
    assert {"implicit", "sparse_dot_topn", "sklearn"} <= set(reg.impls("cosine_topk"))


def test_fixed_cf_reference_and_check_catch_a_wrong_ranking():
    """The cf_fixed_recommend check recomputes the ranking in float64 (against the slow loop
    definition in test_kernels_predict) and fails on a wrong score or a swapped item."""
    import scipy.sparse

    from recsys_fast.harness.cases import impls_fixed_cf as fx
    from recsys_fast.kernels import FixedCF

    rng = np.random.default_rng(3)
    dense = np.where(rng.random((40, 30)) < 0.3, rng.integers(1, 6, (40, 30)), 0).astype(float)
    R = scipy.sparse.csr_matrix(dense)
    model = FixedCF("item", k=5, dtype=np.float64).fit(R)
    users = np.arange(0, 40, 3)
    items, scores = fx.reference_recommend(R, model.neighbours_, users, 4)
    got_items, got_scores = model.recommend(users, 4)
    np.testing.assert_allclose(scores, got_scores, rtol=1e-12, equal_nan=True)
    from test_kernels_predict import slow_fixed_predict

    P = slow_fixed_predict(dense, "item", 5)
    for r, u in enumerate(users):
        ok = items[r] >= 0
        np.testing.assert_allclose(scores[r][ok], P[u, items[r][ok]], rtol=1e-12)
        assert not (dense[u, items[r][ok]] != 0).any()  # never a rated item
    ref = fx._ranked(items, scores)
    assert fx.compare_ranked_lists(fx._ranked(got_items, got_scores), ref, tol=1e-9,
                                   against="t").text.startswith("equal")
    bad = got_scores.copy()
    bad[2, 0] += 0.01
    assert fx.compare_ranked_lists(fx._ranked(got_items, bad), ref, tol=1e-9,
                                   against="t").text.startswith("mismatch")


def test_select_orders_and_filters():
    reg = toy_registry()
    got = [c.key for c in reg.select(kernels=["toy"], backends=["cpu"])]
    # ours first, then the peers in the order they were registered
    assert got == ["toy/naive/cpu", "toy/optimised/cpu", "toy/scipy/cpu", "toy/sklearn/cpu"]
    assert [c.key for c in reg.select(impls=["scipy"])] == ["toy/scipy/cpu"]


@pytest.mark.parametrize(("kw", "word"), [({"kernels": ["nope"]}, "kernel 'nope'"),
                                          ({"impls": ["fast"]}, "implementation 'fast'"),
                                          ({"backends": ["tpu"]}, "backend 'tpu'")])
def test_unknown_names_list_the_valid_ones(kw, word):
    with pytest.raises(SelectionError, match=word) as err:
        toy_registry().select(**kw)
    assert "valid:" in str(err.value)


def test_scales():
    assert check_scales(["1m", "100k", "1m"]) == ["100k", "1m"]
    with pytest.raises(SelectionError, match="'5m'.*valid: tiny, 100k, 1m, 10m, 25m"):
        check_scales(["5m"])
    assert scale_spec("25m").n_ratings > 25_000_000 - 1
    assert scale_spec("100k").n_users == 943
    with pytest.raises(SelectionError):
        scale_spec("huge")


def test_case_rejects_bad_definitions():
    with pytest.raises(ValueError, match="impl"):
        Case("k", "", "cpu", lambda c, s: None, lambda s: None)
    with pytest.raises(ValueError, match="role"):
        Case("k", "naive", "cpu", lambda c, s: None, lambda s: None, role="peer")
    with pytest.raises(ValueError, match="scales"):
        Case("k", "naive", "cpu", lambda c, s: None, lambda s: None, scales=("2m",))
    reg = Registry()
    reg.add(Case("k", "naive", "cpu", lambda c, s: None, lambda s: None))
    with pytest.raises(ValueError, match="twice"):
        reg.add(Case("k", "naive", "cpu", lambda c, s: None, lambda s: None))


# -- runner --------------------------------------------------------------------------------------
def test_run_case_times_and_checks(no_gpu):
    reg = toy_registry()
    ctx = CaseContext(reg)
    naive = run_case(reg.get("toy", "naive", "cpu"), "tiny", ctx, FAST)
    assert naive.status == "ok" and naive.verdict == "reference"
    assert 1 <= naive.rounds <= 3 and len(naive.times_s) == naive.rounds
    assert naive.min_s <= naive.median_s and naive.iqr_s >= 0
    assert naive.peak_rss_bytes > 0 and naive.extra["gflops"] > 0
    assert naive.extra["examples_per_s"] > 0
    opt = run_case(reg.get("toy", "optimised", "cpu"), "tiny", ctx, FAST)
    assert (opt.verdict, opt.checked_against) == ("equal", "naive")
    assert opt.extra["strategy"] == "numpy"
    bad = run_case(reg.get("toy", "sklearn", "cpu"), "tiny", ctx, FAST)
    assert bad.status == "ok" and bad.verdict.startswith("mismatch")


def test_reference_is_computed_when_naive_was_not_run():
    reg = toy_registry()
    res = run_case(reg.get("toy", "scipy", "cpu"), "100k", CaseContext(reg), FAST)
    assert res.verdict == "equal"


def test_no_naive_reference_where_the_naive_case_is_not_defined():
    ctx = CaseContext(default_registry())
    assert "10m" not in default_registry().get("switching_hybrid_recommend", "naive", "cpu").scales
    assert ctx.naive_reference("switching_hybrid_recommend", "10m") is None


def test_errors_and_broken_imports_are_errors_not_skips(no_gpu):
    """A broken import inside recsys_fast is an error (it used to read as "skipped"); only an
    optional package declared in ``requires`` that is not installed is a skip."""
    reg = toy_registry()
    reg.add(Case("needs_pkg", "optimised", "cpu", lambda c, s: {}, lambda st: 0,
                 requires=("no_such_optional_pkg",)))
    rows = []
    for _kernel, scale, group in runner.groups(reg.select(), ["tiny"]):
        rows += runner.run_group(group, scale, CaseContext(reg), FAST)
    by = {(r.kernel, r.impl, r.backend): r for r in rows}
    assert len(rows) == len(reg)
    broken = by["broken", "optimised", "cpu"]
    assert broken.status == "error" and "RuntimeError: kernel exploded" in broken.error
    missing = by["missing", "optimised", "cpu"]
    assert missing.status == "error" and "no_such_module" in missing.error
    optional = by["needs_pkg", "optimised", "cpu"]
    assert optional.status == "skipped"
    assert "no_such_optional_pkg not installed" in optional.skipped_reason
    assert by["toy", "optimised", "cpu"].status == "ok"


def typo_registry() -> Registry:
    """One case whose setup imports a name that recsys_fast.kernels does not have: what a typo
    or a broken export inside the package looks like to the runner."""
    reg = Registry(factory="test_harness:typo_registry")

    def setup(ctx, scale):
        from recsys_fast.kernels import cosine_topkk  # noqa: F401 - the typo

    reg.add(Case("typo", "optimised", "cpu", setup, lambda st: 0))
    return reg


def test_a_broken_kernel_import_fails_the_bench_command(tmp_path, monkeypatch, capsys):
    """`recsys-fast bench` exits non-zero when a case errors, e.g. a typo inside recsys_fast
    (run in an isolated worker, as the CLI runs): such a run is never green."""
    from recsys_fast.harness.cases import registry as registry_mod

    monkeypatch.setattr(registry_mod, "default_registry", typo_registry)
    monkeypatch.setenv(machine.ENV_MACHINE_ID, "test-box")
    rc = cli.main(["bench", "--scale", "tiny", "--quick", "--out", str(tmp_path),
                   "--no-progress"])
    out = capsys.readouterr()
    assert rc == 1
    assert "ERROR setup: ImportError" in out.out and "cosine_topkk" in out.out
    assert "1 case(s) failed" in out.err
    doc = results.load_results(next((tmp_path / "test-box").glob("*.json")))
    assert doc["settings"]["isolated"] is True and doc["cases"][0]["status"] == "error"

def test_gpu_absent_is_a_skip_with_the_reason(no_gpu):
    reg = toy_registry()
    res = run_case(reg.get("toy", "optimised", "gpu"), "tiny", CaseContext(reg), FAST)
    assert res.status == "skipped"
    assert res.skipped_reason == "gpu backend unavailable: faked: no CUDA device"


def test_over_budget_is_a_skip_naming_the_size(monkeypatch):
    reg = toy_registry()
    res = run_case(reg.get("hungry", "naive", "cpu"), "tiny", CaseContext(reg), FAST)
    assert res.status == "skipped" and res.skipped_reason.startswith("needs 42.0 TiB")
    # a tiny budget from the environment skips a real case before it allocates
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "1K")
    case = default_registry().get("cosine_distances", "naive", "cpu")
    res = run_case(case, "100k", CaseContext(default_registry()), FAST)
    assert res.status == "skipped" and "needs" in res.skipped_reason
    assert "memory budget 1.0 KiB" in res.skipped_reason


def test_memory_budget_error_in_setup_is_a_skip():
    def setup(ctx, scale):
        raise MemoryBudgetError("dense 10 x 10", 800, 10)

    case = Case("k", "naive", "cpu", setup, lambda st: None)
    res = run_case(case, "tiny", CaseContext(), FAST)
    assert res.status == "skipped" and "needs 800 B" in res.skipped_reason


def test_scale_not_defined_for_a_case():
    case = Case("k", "naive", "cpu", lambda c, s: None, lambda st: None, scales=("tiny",))
    res = run_case(case, "25m", CaseContext(), FAST)
    assert res.status == "skipped" and "not defined at scale 25m" in res.skipped_reason


def test_scrub_paths_keeps_results_free_of_machine_paths():
    text = runner.scrub_paths("cannot import 'x' (/home/me/src/pkg/__init__.py); 1/2 done")
    assert text == "cannot import 'x' (__init__.py); 1/2 done"


# -- results files -------------------------------------------------------------------------------
def _toy_results(tmp_path, **kw) -> tuple[dict, Path]:
    return bench_mod.run_bench(scales=kw.pop("scales", ["tiny"]), registry=toy_registry(),
                               out_dir=tmp_path / "results", gemm_n=64, progress=False,
                               settings=RunSettings(repeat=2, max_time=0.5), **kw)


def test_max_time_option_is_used_and_recorded(tmp_path, no_gpu):
    """``--max-time`` (``run_bench(max_time=...)``) replaces the 20 s early stop and is written
    into the results file's settings."""
    data, path = _toy_results(tmp_path, max_time=123.0)
    assert results.load_results(path)["settings"]["max_time"] == 123.0
    assert bench_mod._settings(True, None, None, None, None).max_time == runner.QUICK.max_time
    with pytest.raises(ValueError, match="max_time must be a positive number"):
        bench_mod._settings(False, None, None, None, -1.0)


def test_run_bench_writes_a_valid_results_file(tmp_path, no_gpu, monkeypatch):
    monkeypatch.setenv(machine.ENV_MACHINE_ID, "Test Box #1")
    data, path = _toy_results(tmp_path)
    assert path.parent == tmp_path / "results" / "test-box-1"
    loaded = results.load_results(path)
    assert loaded["schema_version"] == results.SCHEMA_VERSION
    assert loaded["gemm_peak"]["cpu_float32_gflops"] > 0
    assert loaded["gemm_peak"]["cpu_float64_gflops"] > 0
    assert loaded["machine"]["cores_logical"] >= 1 and loaded["machine"]["ram_bytes"] > 0
    assert "numpy" in loaded["software"] and isinstance(loaded["blas"], list)
    assert loaded["scale_shapes"]["tiny"]["n_ratings"] > 0
    statuses = {(c["kernel"], c["impl"], c["backend"]): c["status"] for c in loaded["cases"]}
    assert statuses["toy", "optimised", "gpu"] == "skipped"
    assert statuses["broken", "optimised", "cpu"] == "error"
    text = path.read_text()
    assert str(REPO) not in text and str(Path.home()) not in text  # no machine paths
    table = bench_mod.format_table(data)
    assert "toy" in table and "skipped: gpu backend unavailable" in table
    # a second run in the same second gets its own file
    _data2, path2 = _toy_results(tmp_path)
    assert path2 != path and path2.exists()


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "r" / "run.json"
    results.atomic_write_text(target, '{"old": true}')

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write_text(target, '{"new": "half-written')
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write_text(tmp_path / "r" / "fresh.json", "{}")
    assert not (tmp_path / "r" / "fresh.json").exists()


def _doc() -> dict:
    return results.build_results(
        [{"kernel": "k", "impl": "naive", "backend": "cpu", "scale": "tiny", "status": "ok",
          "median_s": 0.1}], machine={}, machine_id="m", software={}, blas=[], thread_env={},
        gemm_peak={}, git=None, settings={}, data_sources={})


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(schema="asv"), "not a recsys_fast results file"),
    (lambda d: d.update(schema_version=99), "unsupported schema_version 99"),
    (lambda d: d.pop("cases"), "missing fields"),
    (lambda d: d["cases"][0].pop("scale"), r"cases\[0\] lacks \['scale'\]"),
    (lambda d: d["cases"][0].update(status="great"), "status 'great'"),
    (lambda d: d["cases"][0].update(median_s=None), "no positive median_s"),
    (lambda d: d["cases"].append(dict(d["cases"][0])),
     r"case 1 repeats case 0 \(k/naive/cpu/tiny\)"),
])
def test_schema_validation_names_the_file(tmp_path, mutate, message):
    doc = _doc()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=message) as err:
        results.load_results(path)
    assert str(path) in str(err.value)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "schema": "recsys_fast.bench.results",\n  "cases": [,]\n}')
    with pytest.raises(DataFormatError, match=r"broken.json, line 3: invalid JSON"):
        results.load_results(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="top level is list"):
        results.load_results(path)
    with pytest.raises(DataFormatError, match="not found"):
        results.load_results(tmp_path / "absent.json")


# -- machine -------------------------------------------------------------------------------------
def test_machine_info_and_id(monkeypatch):
    info = machine.machine_info()
    monkeypatch.delenv(machine.ENV_MACHINE_ID, raising=False)
    mid = machine.machine_id(info)
    assert mid == machine.machine_id(info) and mid.replace("-", "").isalnum()
    assert f"{info['cores_logical']}c" in mid
    assert all("/" not in str(b.get("file", "")) for b in machine.blas_info())
    peak = machine.gemm_peak(n=64, rounds=1)
    assert peak["cpu_float32_gflops"] > 0 and peak["n"] == 64


def test_scatter_rate_measures_an_in_cache_and_an_out_of_cache_accumulator():
    from recsys_fast.harness.run._scatter import scatter

    acc = np.zeros((2, 8), dtype=np.float32)
    scatter(acc, np.array([1, 1, 7, 0], dtype=np.int32), np.ones(4, dtype=np.float32), 3)
    assert acc.sum() == 12 and acc[:, 1].sum() == 6  # every update lands, once per rep
    r = machine.scatter_rate(rounds=1, updates=1 << 16)
    assert r["cpu_scatter_l2_updates_per_s"] > 0 and r["cpu_scatter_dram_updates_per_s"] > 0
    assert r["l2_accumulator_bytes"] < r["dram_accumulator_bytes"]


def test_report_sets_sparse_multiply_adds_against_the_scatter_rates():
    from recsys_fast.harness.report import _bw_text, _roofline

    run = {"gemm_peak": {"cpu_float32_gflops": 100.0},
           "bandwidth": {"cpu_triad_gbytes_per_s": 10.0,
                         "scatter": {"cpu_scatter_l2_updates_per_s": 1e9,
                                     "cpu_scatter_dram_updates_per_s": 1e8, "threads": 2,
                                     "l2_accumulator_bytes": 1 << 19,
                                     "dram_accumulator_bytes": 1 << 27}}}
    row = {"backend": "cpu", "median_s": 1.0,
           "extra": {"flops": 1e9, "gflops": 1.0, "flops_dtype": "float32", "roof": "scatter"}}
    text = _roofline(row, run)
    assert "0.5 G multiply-adds/s (50 % of the in-cache scatter-add rate, 500 %" in text
    assert "multiply-adds" not in _roofline({**row, "extra": {**row["extra"], "roof": "gemm"}},
                                            run)
    assert "scatter-add 1 G updates/s" in _bw_text(run["bandwidth"])


# -- CLI -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--kernels", "warp_drive"], "unknown kernel 'warp_drive'; valid: weighted_rating"),
    (["bench", "--backend", "tpu"], "unknown backend 'tpu'; valid: cpu, gpu"),
    (["bench", "--scale", "100k,3m"], "unknown scale '3m'; valid: tiny, 100k"),
    (["bench", "--impl", "turbo"], "unknown implementation 'turbo'"),
    (["report", "nowhere.json"], "nowhere.json: results file not found"),
])
def test_cli_bad_input_is_a_clear_error(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_unwritable_out_fails_before_any_work(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    called = []
    monkeypatch.setattr(machine, "gemm_peak", lambda **kw: called.append(1) or {})
    assert cli.main(["bench", "--kernels", "weighted_rating", "--out", str(blocker / "x")]) == 2
    assert "is not writable" in capsys.readouterr().err and not called


def test_cli_list_and_parser_wiring(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    cli.add_bench_commands(sub)
    args = parser.parse_args(["bench", "--scale", "100k,1m", "--quick", "--repeat", "2"])
    assert args.func is cli.cmd_bench and args.scale == ["100k", "1m"] and args.quick
    assert parser.parse_args(["report", "a.json"]).func is cli.cmd_report
    assert cli.main(["bench", "--list", "--kernels", "cosine_topk"]) == 0
    out = capsys.readouterr().out
    assert "cosine_topk/implicit/cpu" in out and "csr_build" not in out


def test_cli_bench_runs_and_prints_a_table(tmp_path, capsys, monkeypatch, no_gpu):
    import recsys_fast.harness.cases.registry as registry_mod

    monkeypatch.setattr(bench_mod, "default_registry", toy_registry)
    monkeypatch.setattr(registry_mod, "default_registry", toy_registry)
    code = cli.main(["bench", "--scale", "tiny", "--kernels", "toy", "--impl",
                     "naive,optimised", "--quick", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "results written to" in out and "reference" in out and "equal (vs naive)" in out


# -- real data ----------------------------------------------------------------------------------
def test_scale_100k_uses_the_real_data_when_found(ml100k_dir):
    ctx = CaseContext(default_registry(), ml100k=ml100k_dir)
    inter = ctx.interactions("100k")
    assert inter.n_ratings == 100_000 and "real" in ctx.data_sources["100k"]
    res = run_case(default_registry().get("weighted_rating", "optimised", "cpu"), "100k", ctx,
                   RunSettings(repeat=1, max_time=0.1))
    assert res.status == "ok" and res.verdict == "equal", res


# -- smoke: every case once at the smallest scale, through the asv and pytest wrappers -----------
def _load_asv_suite():
    root = REPO / "bench" / "asv"
    spec = importlib.util.spec_from_file_location(
        "recsys_fast_asv_suite", root / "__init__.py", submodule_search_locations=[str(root)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pkg
    spec.loader.exec_module(pkg)
    mods = [importlib.import_module(f"{spec.name}.{p.stem}")
            for p in sorted(root.glob("bench_*.py"))]  # bench_kernels.py: generated classes
    return [cls for m in mods for name, cls in vars(m).items()
            if isinstance(cls, type) and not name.startswith("_") and hasattr(cls, "kernel")]


ASV_CLASSES = _load_asv_suite()


def test_asv_suite_covers_the_registry():
    assert {c.kernel for c in ASV_CLASSES} == set(default_registry().kernels)
    for cls in ASV_CLASSES:
        impls, backends, scales = cls.params
        assert impls == default_registry().impls(cls.kernel)
        assert backends == list(BACKENDS) and scales == [s for s in SCALES if s != "tiny"]
        with pytest.raises(NotImplementedError, match="RECSYS_FAST_ASV_FULL"):
            cls().setup(impls[0], "cpu", "25m")
        with pytest.raises(NotImplementedError, match="no case"):
            cls().setup("naive", "gpu", "100k")  # naive code is CPU-only: never registered


@pytest.mark.parametrize("cls", [
    # the DNN cases import TensorFlow and train: tens of seconds on a shared 2-core box
    pytest.param(c, marks=[pytest.mark.slow] if c.kernel.startswith("dnn") else [])
    for c in ASV_CLASSES], ids=lambda c: c.__name__)
def test_asv_suite_runs_each_case_once(cls, no_gpu):
    bench = cls()
    bench.warmup_call = False  # smoke: the timed method is the one call
    ran = 0
    for impl in cls.params[0]:
        for backend in cls.params[1]:
            try:
                bench.setup(impl, backend, "tiny")
            except NotImplementedError as exc:
                # declared skips: no GPU, a missing package, a case needing its worker's env
                assert backend in ("gpu", "dask") or "not installed" in str(exc) or (
                    default_registry().get(cls.kernel, impl, backend).worker_env
                    and "BackendUnavailableError" in str(exc)), (impl, backend, exc)
                continue
            bench.time_kernel(impl, backend, "tiny")
            bench.teardown(impl, backend, "tiny")
            ran += 1
    assert ran >= 1


def _pytest_suite(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECSYS_FAST_BENCH_SCALES": "tiny", "RECSYS_FAST_BENCH_ROUNDS": "1"}
    # -o addopts= drops the project's --benchmark-skip; --benchmark-disable runs each once
    return subprocess.run([sys.executable, "-m", "pytest", "bench/pytest", "-q", "-p",
                           "no:cacheprovider", "-o", "addopts=", "--benchmark-disable",
                           *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # ~20 s: a pytest subprocess importing every kernel
def test_pytest_benchmark_suite_runs_each_case_once(tmp_path):
    proc = _pytest_suite(["-rs"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


# -- checks where the naive reference cannot run ------------------------------------------------
def test_fallback_checks_without_a_naive_reference():
    """With no naive reference (as at scales where it does not fit), every optimised CPU case is
    checked against an independent exact computation on sampled rows, and a perturbed result is
    caught."""
    ctx = CaseContext(registry=None)  # naive_reference() -> None: forces the fallback paths
    checked = {}
    for case in default_registry().select(impls=["optimised"], backends=["cpu"]):
        if case.check is None or case.kernel.startswith("dnn"):  # dnn: training, n/a
            continue
        try:
            state = case.setup(ctx, "tiny")
            result = case.run(state)
        except ImportError:
            continue  # kernel not written yet
        verdict = case.check(ctx, state, result)
        assert verdict.ok, (case.key, verdict)
        assert verdict.against and verdict.against != "naive", (case.key, verdict)
        checked[case.kernel] = verdict.against
        if case.kernel in ("cf_course_user", "cf_course_item", "cosine_distances"):
            bad = case.check(ctx, state, result * 1.001)
            assert bad.text.startswith("mismatch"), (case.key, bad)
    assert {"csr_build", "cosine_topk"} <= set(checked)


def test_topk_check_catches_a_wrong_neighbour():
    import scipy.sparse

    from recsys_fast.harness.cases.checks import compare_topk, exact_cosine_rows

    X = scipy.sparse.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1.0]]))
    rows = np.arange(4)
    exact = exact_cosine_rows(X, rows)
    good = scipy.sparse.csr_matrix(np.where(np.eye(4) > 0, 0, exact) * (exact > 0.6))
    assert compare_topk(good, exact, rows, 1, include_self=False, tol=1e-6,
                        against="x").text.startswith("equal")
    wrong = scipy.sparse.csr_matrix(([exact[0, 2] + 1.0], ([0], [2])), shape=(4, 4))
    assert compare_topk(wrong, exact, rows, 1, include_self=False,
                        tol=1e-6, against="x").text.startswith("mismatch")


def test_ranked_list_check_allows_only_ties():
    from recsys_fast.harness.cases.checks import compare_ranked_lists

    ref = {1: [(0.9, 2), (0.5, 3), (0.5, 4)]}
    assert compare_ranked_lists(ref, ref, tol=1e-6, against="x").text == "equal"
    swapped = {1: [(0.9, 2), (0.5, 4), (0.5, 3)]}
    assert compare_ranked_lists(swapped, ref, tol=1e-6, against="x").text == "equal up to ties"
    wrong = {1: [(0.9, 3), (0.5, 2), (0.5, 4)]}
    assert compare_ranked_lists(wrong, ref, tol=1e-6, against="x").text.startswith("mismatch")
    assert compare_ranked_lists({1: ref[1][:2]}, ref, tol=1e-6,
                                against="x").text.startswith("mismatch")


# -- shapes: the synthetic laws as a run dimension --------------------------------------------
def test_interactions_work_counts_pairs_and_the_head(rng):
    from recsys_fast.data.interactions import Interactions, make_items_frame, make_ratings_frame

    users = np.array([1, 1, 1, 2, 2, 3])  # degrees 3, 2, 1 -> 9 + 4 + 1 item-item pairs
    items = np.array([10, 20, 30, 10, 20, 10])  # degrees 3, 2, 1 -> the same for user-user
    inter = Interactions(make_ratings_frame(users, items, np.ones(6)),
                         make_items_frame(np.array([10, 20, 30])), name="toy")
    work = inter.work()
    assert work["pair_madds_item_item"] == 14.0 and work["pair_madds_user_user"] == 14.0
    assert work["top1pct_item_share"] == pytest.approx(3 / 6)  # the one most rated item


def test_a_shape_makes_every_in_memory_scale_synthetic_with_its_laws():
    default = CaseContext(None).interactions("tiny")
    flat = CaseContext(None, shape="flat")
    got = flat.interactions("tiny")
    assert "shape flat" in flat.data_sources["tiny"]
    assert got.work()["top1pct_item_share"] < default.work()["top1pct_item_share"]
    with pytest.raises(SelectionError, match="unknown shape 'lumpy'; valid: default, flat"):
        CaseContext(None, shape="lumpy")


def test_the_run_records_its_shape_and_the_data_work(no_gpu, tmp_path):
    reg = toy_registry()
    data, _ = bench_mod.run_bench(scales=["tiny"], kernels=["toy"], impls=["naive"],
                                  registry=reg, out_dir=None, gemm_n=64, progress=False,
                                  isolate=False, settings=FAST, shape="flat")
    assert data["settings"]["shape"] == "flat"
    rec = data["scale_shapes"]["tiny"]
    assert rec["laws"] == "flat"
    assert rec["work"]["pair_madds_item_item"] > 0 and 0 < rec["work"]["top1pct_item_share"] < 1
    assert "shape flat" in data["data_sources"]["tiny"]
    with pytest.raises(SelectionError, match="in-memory scales"):
        bench_mod.run_bench(scales=["100m"], registry=reg, out_dir=None, progress=False,
                            isolate=False, settings=FAST, shape="flat")


def test_every_row_names_the_data_it_ran_on(no_gpu):
    """Each case row carries its scale's provenance digest; the provenance names the generator,
    its parameters and seed and the counts loaded; another shape is another digest."""
    from recsys_fast.harness.run import provenance

    reg = toy_registry()
    runs = {}
    for seed, shape in ((0, "default"), (0, "default"), (0, "steep"), (0, "flat")):
        data, _ = bench_mod.run_bench(scales=["tiny"], kernels=["toy"], impls=["naive"],
                                      registry=reg, out_dir=None, gemm_n=64, progress=False,
                                      isolate=False, settings=FAST, shape=shape)
        prov = data["data_provenance"]["tiny"]
        assert prov["kind"] == "generator" and prov["generator"] == "recsys_fast.data.synthetic"
        assert prov["seed"] == seed and prov["loaded"]["n_ratings"] > 0
        assert prov["params"]["n_users"] == prov["loaded"]["n_users"]
        assert prov["digest"] == provenance.digest(prov)
        assert data["cases"] and all(c["data"] == prov["digest"] for c in data["cases"])
        runs.setdefault((seed, shape), []).append(prov["digest"])
    assert len(set(runs[(0, "default")])) == 1  # the same data, the same digest
    assert len({d[0] for d in runs.values()}) == 3  # each shape is other data


def test_provenance_digest_ignores_the_folder_and_names_differences(tmp_path):
    from recsys_fast.harness.run import provenance

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "u.data").write_bytes(b"1\t2\t3\t4\n")
    a = provenance.finished(provenance.files_read("ml-100k", tmp_path / "a", ["u.data"]))
    b = provenance.finished(provenance.files_read("ml-100k", tmp_path / "b", ["u.data"]))
    assert a["digest"] == b["digest"] and a["path"] != b["path"]
    assert a["files"][0]["bytes"] == 8 and len(a["files"][0]["sha256"]) == 64
    (tmp_path / "b" / "u.data").write_bytes(b"1\t2\t5\t4\n")
    c = provenance.finished(provenance.files_read("ml-100k", tmp_path / "b", ["u.data"]))
    assert c["digest"] != a["digest"]
    diff = provenance.differences(a, c)
    assert len(diff) == 1 and diff[0].startswith("files: ")  # a list: named whole


def test_provenance_records_no_machine_path(tmp_path):
    """A folder under the shared data folder is recorded relative to $RECSYS_FAST_SHARED,
    any other by its own name: results files carry no path of this machine."""
    from recsys_fast.harness.run import provenance

    shared = tmp_path / "shared"
    (shared / "ml-100k").mkdir(parents=True)
    (shared / "ml-100k" / "u.data").write_bytes(b"1\t2\t3\t4\n")
    rec = provenance.files_read("ml-100k", shared / "ml-100k", ["u.data"], shared=str(shared))
    assert rec["path"] == "$RECSYS_FAST_SHARED/ml-100k"
    assert provenance.portable_path(tmp_path / "elsewhere" / "ml-100k", str(shared)) == "ml-100k"
    assert provenance.portable_path(shared, str(shared)) == "$RECSYS_FAST_SHARED"


@pytest.mark.realdata
def test_a_cut_copy_of_ml100k_is_refused_and_the_real_one_fingerprinted(ml100k_dir, tmp_path):
    """``--ml100k`` pointing at a copy with half the ratings: refused by the release's counts
    before any case runs, never labelled real; the real one's source names what was read."""
    from recsys_fast.errors import DatasetMismatchError

    half = tmp_path / "half"
    half.mkdir()
    lines = (ml100k_dir / "u.data").read_text().splitlines(keepends=True)
    (half / "u.data").write_text("".join(lines[:50_000]))
    for name in ("u.item", "u.user", "u.genre", "u.occupation"):
        if (ml100k_dir / name).exists():
            (half / name).write_bytes((ml100k_dir / name).read_bytes())
    with pytest.raises(DatasetMismatchError, match="50,000 ratings; ml-100k has"):
        CaseContext(default_registry(), ml100k=half).interactions("100k")
    ctx = CaseContext(default_registry(), ml100k=ml100k_dir)
    ctx.interactions("100k")
    size = (ml100k_dir / "u.data").stat().st_size
    assert f"u.data {size:,} bytes, SHA-256 " in ctx.data_sources["100k"]
    assert str(ml100k_dir.parent) not in ctx.data_sources["100k"]  # no machine path
    from recsys_fast.data.manifest import sha256_file

    prov = ctx.data_provenance["100k"]
    assert prov["name"] == "ml-100k" and prov["kind"] == "files"
    assert prov["files"] == [{"file": "u.data", "bytes": size,
                              "sha256": sha256_file(ml100k_dir / "u.data")}]


def test_resume_refuses_data_other_than_the_kept_cases_ran_on(tmp_path, capsys):
    """A run whose journal says scale tiny was read from one source cannot be finished on
    another (a RECSYS_FAST_SHARED set or unset between the two)."""
    from dataclasses import asdict

    from recsys_fast.harness.run.bench import Selection
    from recsys_fast.harness.run.machine import git_info, machine_id
    from recsys_fast.results_store.journal import Journal

    header = {"env": {"machine_id": machine_id(), "git": git_info()},
              "settings": asdict(RunSettings(repeat=1, max_time=0.1)),
              "selection": asdict(Selection.of(["tiny"], ["weighted_rating"], ["optimised"],
                                                ["cpu"], True, None))}
    j = Journal.create(tmp_path / header["env"]["machine_id"], header)
    j.append({"type": "data", "scale": "tiny", "source": "ml-100k (real MovieLens 100K); x",
              "shape": {}})
    with open(j.path, "ab") as fh:
        fh.write(b'{"type": "row", "ro')  # and a writer killed mid-line
    run = j.path.name.split(".")[0]
    assert cli.main(["bench", "--resume", run, "--out", str(tmp_path), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "last line was cut off mid-write (19 bytes" in err and j.torn_path.name in err
    assert "ran scale tiny on other data than it would read now " \
           "('ml-100k (real MovieLens 100K); x' -> " in err
    assert "resume with the same data" in err and j.path.exists()


def test_resume_refuses_data_whose_digest_changed(tmp_path, capsys):
    """The same description but other data (the generator's parameters changed between the
    two, as an edited seed or law would): refused, naming what differs."""
    from dataclasses import asdict

    from recsys_fast.harness.run.bench import Selection
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.machine import git_info, machine_id
    from recsys_fast.results_store.journal import Journal

    ctx = CaseContext(None)
    inter = ctx.interactions("tiny")
    prov = dict(ctx.data_provenance["tiny"])
    prov["params"] = dict(prov["params"], popularity_exponent=0.123)
    header = {"env": {"machine_id": machine_id(), "git": git_info()},
              "settings": asdict(RunSettings(repeat=1, max_time=0.1)),
              "selection": asdict(Selection.of(["tiny"], ["weighted_rating"], ["optimised"],
                                                ["cpu"], True, None))}
    from recsys_fast.harness.run import provenance

    j = Journal.create(tmp_path / header["env"]["machine_id"], header)
    j.append({"type": "data", "scale": "tiny", "source": ctx.data_sources["tiny"],
              "shape": {}, "provenance": provenance.finished(prov, inter)})
    run = j.path.name.split(".")[0]
    assert cli.main(["bench", "--resume", run, "--out", str(tmp_path), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "ran scale tiny on other data than it would read now" in err
    assert "params.popularity_exponent: 0.123 -> " in err and j.path.exists()


def test_out_of_core_scales_time_one_checked_call():
    """At 100m and 1b a call takes minutes: the checked first call is the one timed round."""
    from recsys_fast.harness.cases.registry import ALL_SCALES, Case, Registry, Verdict
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import run_case

    calls = []
    case = Case("toy", "optimised", "cpu", lambda ctx, scale: {"n": 3},
                lambda st: calls.append(1) or 7, check=lambda ctx, st, r: Verdict("equal", "x"),
                scales=ALL_SCALES)
    res = run_case(case, "100m", CaseContext(Registry()))
    assert res.status == "ok" and res.verdict == "equal"
    assert len(calls) == 1 and res.rounds == 1 and len(res.times_s) == 1
    assert "one call" in res.extra["rounds_note"] and res.peak_rss_bytes
    calls.clear()
    res = run_case(case, "tiny", CaseContext(Registry()))
    assert res.rounds >= 2 and len(calls) == res.rounds + 2  # checked + warm-up + rounds
