"""The TensorFlow Recommenders peer of ``dnn_epoch`` and the ``worker_env`` hook it relies on.

tensorflow-recommenders needs ``tf.keras`` to be Keras 2 (``tf-keras`` installed and
``TF_USE_LEGACY_KERAS=1`` set before TensorFlow is imported), while recsys_fast uses Keras 3:
its case declares ``worker_env``, which the isolated runner merges into the environment of the
worker process of its group. Without that variable (in-process runs, asv, pytest-benchmark)
the case is skipped with the reason, never an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_fast.harness.cases.impls_dnn import TfrsDnnEpoch
from recsys_fast.harness.cases.registry import Case, Registry, default_registry
from recsys_fast.harness.run import runner
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.runner import RunSettings
from recsys_fast.harness.run.workers import GroupRunner, group_env

FAST = RunSettings(repeat=2, warmup=1, min_rounds=1, max_time=1.0, case_timeout=600)
PROBE = "RECSYS_FAST_TEST_WORKER_ENV"
LEGACY = "TF_USE_LEGACY_KERAS"


def needs_tfrs():
    if TfrsDnnEpoch.missing():
        pytest.skip(f"optional package {', '.join(TfrsDnnEpoch.missing())} not installed "
                    "(pip install -e '.[tfrs]')")


# -- the worker_env hook, with a toy case -------------------------------------------------------
def _read_env(st):
    return os.environ.get(PROBE)


def env_registry() -> Registry:
    """Two cases of one kernel; only ``optimised`` declares the variable."""
    reg = Registry(factory="test_tfrs_peer:env_registry")
    noop = lambda ctx, scale: None  # noqa: E731
    seen = lambda st, result: {"seen": result}  # noqa: E731
    reg.add(Case("env_probe", "naive", "cpu", noop, _read_env, extra=seen))
    reg.add(Case("env_probe", "optimised", "cpu", noop, _read_env, extra=seen,
                 worker_env={PROBE: "set-by-case"}))
    return reg


def test_worker_env_reaches_the_worker_of_the_group_and_is_recorded(monkeypatch):
    monkeypatch.delenv(PROBE, raising=False)
    reg = env_registry()
    rows = []
    gr = GroupRunner(reg, FAST, on_row=rows.append)
    try:
        gr.run(reg.select(), "tiny", CaseContext(reg))
    finally:
        gr.close()
    by = {r["impl"]: r for r in rows}
    assert {r["status"] for r in rows} == {"ok"}, rows
    # the whole group shares one worker, so the case without the declaration sees it too
    assert by["optimised"]["extra"]["seen"] == "set-by-case"
    assert by["naive"]["extra"]["seen"] == "set-by-case"
    assert by["optimised"]["extra"]["worker_env"] == {PROBE: "set-by-case"}
    assert PROBE not in os.environ  # the parent's environment is untouched


def test_worker_env_is_not_applied_in_process(monkeypatch):
    monkeypatch.delenv(PROBE, raising=False)
    reg = env_registry()
    rows = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)
    assert [r.extra["seen"] for r in rows] == [None, None]


def test_conflicting_worker_envs_cannot_share_a_worker():
    noop = lambda *a: None  # noqa: E731
    a = Case("k", "naive", "cpu", noop, noop, worker_env={PROBE: "1"})
    b = Case("k", "optimised", "cpu", noop, noop, worker_env={PROBE: "2"})
    assert group_env([a, a]) == {PROBE: "1"}
    with pytest.raises(ValueError, match="cannot share a worker"):
        group_env([a, b])
    with pytest.raises(ValueError, match="worker_env must map str to str"):
        Case("k", "naive", "cpu", noop, noop, worker_env={PROBE: 1})


def test_the_tfrs_case_declares_the_legacy_keras_environment():
    case = default_registry().get("dnn_epoch", "tfrs", "cpu")
    assert case.worker_env == {LEGACY: "1"}
    assert case.requires == ("tensorflow_recommenders", "tf_keras")
    assert case.check is not None  # its loss is recomputed from its towers
    assert TfrsDnnEpoch.same_function is False  # compared on quality, verdict n/a


# -- the peer itself -----------------------------------------------------------------------------
def test_in_process_without_legacy_keras_is_a_skip_with_the_reason(monkeypatch):
    """As ``--in-process``, asv and pytest-benchmark run it: TensorFlow imported with Keras 3 as
    ``tf.keras``. The case is skipped with a one-line reason, not an ImportError."""
    needs_tfrs()
    from recsys_fast.harness.cases.tfrs_retrieval import legacy_keras_problem
    from recsys_fast.harness.run import suites

    monkeypatch.delenv(LEGACY, raising=False)
    reg = default_registry()
    cases = reg.select(kernels=["dnn_epoch"], impls=["tfrs"], backends=["cpu"])
    (row,) = runner.run_group(cases, "tiny", CaseContext(reg), FAST)
    assert row.status == "skipped", (row.status, row.error)
    assert "TF_USE_LEGACY_KERAS=1" in row.skipped_reason and "\n" not in row.skipped_reason
    with pytest.raises(suites.NotRunnable, match="TF_USE_LEGACY_KERAS=1"):
        suites.prepare(cases[0], "tiny", CaseContext(reg))

    import tensorflow as tf

    if tf.keras.__name__.startswith("keras"):  # resolved to Keras 3 in this process
        monkeypatch.setenv(LEGACY, "1")  # too late: tf.keras stays what it was
        assert "resolved before the variable was set" in legacy_keras_problem()


@pytest.mark.slow
def test_tfrs_runs_in_its_worker_beside_ours_at_tiny_scale(monkeypatch):
    """The isolated runner, as ``recsys-fast bench`` runs it: this process does not set the
    variable, the worker of the group gets it from the case, and ours (Keras 3) and TFRS
    (tf_keras) train in that one worker."""
    needs_tfrs()
    monkeypatch.delenv(LEGACY, raising=False)
    reg = default_registry()
    rows = []
    gr = GroupRunner(reg, FAST, on_row=rows.append)
    try:
        gr.run(reg.select(kernels=["dnn_epoch"], impls=["optimised", "tfrs"], backends=["cpu"]),
               "tiny", CaseContext(reg))
    finally:
        gr.close()
    by = {r["impl"]: r for r in rows}
    for impl in ("optimised", "tfrs"):
        assert by[impl]["status"] == "ok", by[impl]
        assert by[impl]["extra"]["worker_env"] == {LEGACY: "1"}
        assert by[impl]["extra"]["examples_per_s"] > 0
    assert by["optimised"]["verdict"] == "equal"  # Keras 3 unaffected by the variable
    tfrs = by["tfrs"]  # a different function: n/a, with its own loss verified
    assert tfrs["verdict"] == "n/a", (tfrs["verdict"], tfrs["checked_against"])
    assert "in-batch softmax" in tfrs["checked_against"]
    assert tfrs["extra"]["batch_size"] == 256 and tfrs["extra"]["n_batches"] >= 1


RECALL_PROBE = """
import json, sys
import numpy as np
from recsys_fast.dnn.features import split_last
from recsys_fast.harness.cases import tfrs_retrieval as tr
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.cases.registry import default_registry

train, test = split_last(CaseContext(default_registry()).interactions("tiny"))
st = tr.prepare_retrieval(train, seed=0)
first = tr.fit_retrieval_epochs(st, 1)
users, items = tr.user_vectors(st, test), tr.item_vectors(st)
best = np.argmax(users @ items.T, axis=1) + 1
out = {
    "loss": first["loss"], "examples_per_s": first["examples_per_s"],
    "n_items": test.n_items, "items_shape": list(items.shape),
    "all": tr.evaluate_retrieval_recall(st, test, k=test.n_items)["recall@%d" % test.n_items],
    "top1": tr.evaluate_retrieval_recall(st, test, k=1)["recall@1"],
    "top1_numpy": float(np.mean(best == test.labels)),
    "loss_error": tr.in_batch_loss_error(st)[0],
}
corrected = tr.prepare_retrieval(train, seed=0, sampling_correction=True)
tr.fit_retrieval_epochs(corrected, 1)
out["loss_error_logq"] = tr.in_batch_loss_error(corrected)[0]
json.dump(out, sys.stdout)
"""


@pytest.mark.slow
def test_tfrs_recall_is_exact_top_k_over_every_item(tmp_path):
    """In a fresh interpreter with the variable set: recall@n_items is 1 (every label is
    somewhere in the catalogue), recall@1 equals the arg-max of its towers' dot products, and
    its training loss is the in-batch softmax of those towers (with and without the logQ
    correction)."""
    needs_tfrs()
    env = {**os.environ, LEGACY: "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", RECALL_PROBE], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["items_shape"] == [out["n_items"], 64]
    assert out["all"] == 1.0
    assert out["top1"] == pytest.approx(out["top1_numpy"])
    assert out["loss_error"] < 1e-5
    assert out["loss_error_logq"] < 1e-5  # with the logQ correction, recomputed likewise
    assert out["examples_per_s"] > 0 and all(v > 0 for v in out["loss"])
