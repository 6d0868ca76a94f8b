"""The YouTube DNN on Keras' JAX and PyTorch backends with TensorFlow hidden.

Each backend runs in a fresh subprocess (Keras fixes its backend at import) that hides
TensorFlow, loads the weights of a TensorFlow-backend model, and must give the same forward
outputs (inference and training mode, rtol 1e-5 / atol 1e-6 in float32), then trains with the
numpy batcher (full and sampled softmax): the loss falls and recall@k is computed. Subprocesses
run on the CPU (``CUDA_VISIBLE_DEVICES=""``, ``JAX_PLATFORMS=cpu``); ``tests/test_gpu.py`` repeats
the run on a GPU. Skipped where JAX / PyTorch are not installed (they are not dependencies).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys_fast.dnn import portable

REPO = Path(__file__).resolve().parents[1]
OTHER_BACKENDS = ("jax", "torch")
FORWARD_RTOL, FORWARD_ATOL = 1e-5, 1e-6

DRIVER = """
import json, sys
from recsys_fast.dnn import portable as p
backend, weights, out = sys.argv[1:4]
p.use_keras_backend(backend)
p.hide_tensorflow()
import numpy as np
np.savez(out + "/forward.npz", **p.forward(None if weights == "-" else weights))
opts = dict(epochs=4, batch_size=32, boundaries=[], k=10)
report = {"full": p.train("tiny", **opts),
          "sampled": p.train("tiny", loss="sampled", num_sampled=16, **opts),
          "tensorflow_imported": p.tensorflow_imported()}
with open(out + "/report.json", "w") as f:
    json.dump(report, f, default=str)
"""


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 600):
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env or subprocess_env(), timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def tf_reference(tmp_path_factory):
    """Weights of a seeded model and its TensorFlow-backend outputs (None without TensorFlow)."""
    if not installed("tensorflow"):
        return None
    out = tmp_path_factory.mktemp("tf_reference")
    weights = out / "weights.npz"
    code = ("import sys, numpy as np; from recsys_fast.dnn import portable as p; "
            "p.use_keras_backend('tensorflow'); "
            "np.savez(sys.argv[2], **p.forward(save_weights=sys.argv[1]))")
    run_python(code, str(weights), str(out / "forward.npz"), env=subprocess_env(**CPU_ONLY))
    with np.load(out / "forward.npz") as f:
        return weights, dict(f)


@pytest.fixture(scope="module", params=OTHER_BACKENDS)
def backend_run(request, tf_reference, tmp_path_factory):
    name = request.param
    if not installed(name):
        pytest.skip(f"{name} is not installed (optional: pip install {name})")
    out = tmp_path_factory.mktemp(f"dnn_{name}")
    weights = str(tf_reference[0]) if tf_reference else "-"
    run_python(DRIVER, name, weights, str(out), env=subprocess_env(**CPU_ONLY))
    with np.load(out / "forward.npz") as f:
        forward = dict(f)
    return name, forward, json.loads((out / "report.json").read_text())


# -- slow: fresh interpreters importing JAX / PyTorch, tracing, training -----------------------
@pytest.mark.slow
def test_forward_equals_tensorflow_backend(backend_run, tf_reference):
    name, forward, _report = backend_run
    if tf_reference is None:
        pytest.skip("TensorFlow is not installed: no reference backend to compare with")
    ref = tf_reference[1]
    np.testing.assert_array_equal(forward["rows"], ref["rows"])
    for key in ("inference", "training", "user_vector"):
        np.testing.assert_allclose(forward[key], ref[key], rtol=FORWARD_RTOL, atol=FORWARD_ATOL,
                                   err_msg=f"{name} vs tensorflow, {key}")
    # softmax rows: a real distribution, not an accident of equal zeros
    np.testing.assert_allclose(forward["inference"].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_trains_without_tensorflow(backend_run, loss):
    name, _forward, report = backend_run
    assert report["tensorflow_imported"] is False
    r = report[loss]
    assert r["keras_backend"] == name and r["device"] == "cpu"
    assert r["options"]["pipeline"] == "numpy" and r["options"]["loss"] == loss
    assert r["options"]["jit_compile"] is (name == "jax")
    assert r["options"]["widths"] == ("bucket" if name == "jax" else "tight")
    losses = r["losses"]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0], f"{name}/{loss}: loss did not fall: {losses}"
    rec = r["recall"]
    assert rec["k"] == 10 and rec["n"] > 0
    assert 0.0 <= rec["recall@10"] <= 1.0 and rec["recall@10"] == rec["hit_rate@10"]
    assert r["examples_per_s"] > 0 and len(r["epoch_seconds"]) == 4


# -- fast ----------------------------------------------------------------------------------
def test_hidden_tensorflow_looks_uninstalled_and_dnn_imports_lazily():
    code = """
import importlib.util, sys
import recsys_fast.dnn
from recsys_fast.dnn import portable as p
assert "keras" not in sys.modules, "importing recsys_fast.dnn must not import keras"
p.hide_tensorflow()
assert importlib.util.find_spec("tensorflow") is None
try:
    import tensorflow  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("tensorflow imported although hidden")
assert not p.tensorflow_imported()
print("ok")
"""
    assert run_python(code).stdout.strip().endswith("ok")


def test_use_keras_backend_refuses_a_switch_after_import(monkeypatch):
    keras = pytest.importorskip("keras")
    current = keras.backend.backend()
    other = next(b for b in portable.KERAS_BACKENDS if b != current)
    monkeypatch.setenv("KERAS_BACKEND", current)
    with pytest.raises(RuntimeError, match=f"already imported with backend '{current}'"):
        portable.use_keras_backend(other)
    with pytest.raises(ValueError, match="mxnet"):
        portable.use_keras_backend("mxnet")
    if current in portable.KERAS_BACKENDS:
        portable.use_keras_backend(current)  # the same backend is fine
    if sys.modules.get("tensorflow") is not None:
        with pytest.raises(RuntimeError, match="already imported"):
            portable.hide_tensorflow()


@pytest.fixture(scope="module")
def tiny_features():
    from recsys_fast.dnn.features import build_user_features

    return build_user_features(portable.tiny_interactions())


def test_bucket_widths_give_one_shape_per_bucket(tiny_features):
    from recsys_fast.dnn.features import FIELDS
    from recsys_fast.dnn.pipeline import plan_batches

    f = tiny_features
    bounds = [8, 16]
    tight = plan_batches(f, 7, boundaries=bounds, seed=1)
    bucket = plan_batches(f, 7, boundaries=bounds, seed=1, widths="bucket")
    for a, b in zip(tight.rows, bucket.rows, strict=True):  # same users, same order
        np.testing.assert_array_equal(a, b)
    upper = np.append(bounds, f.watched.lengths.max())
    by_bucket: dict[int, set] = {}
    for rows, w in zip(bucket.rows, bucket.widths, strict=True):
        b = int(np.searchsorted(bounds, f.watched.lengths[rows].max()))
        assert list(w[:3]) == [upper[b]] * 3
        for k, name in enumerate(FIELDS):
            assert f.field(name).lengths[rows].max() <= w[k]
        by_bucket.setdefault(b, set()).add(tuple(w))
    assert all(len(v) == 1 for v in by_bucket.values())
    assert len({int(w[3]) for w in bucket.widths}) == 1  # genre: one width overall
    assert len({tuple(w) for w in tight.widths}) >= len({tuple(w) for w in bucket.widths})
    with pytest.raises(ValueError, match="widths"):
        plan_batches(f, 7, widths="loose")


def test_padding_policy_does_not_change_the_output(tiny_features):
    keras = pytest.importorskip("keras")
    from recsys_fast.dnn.model import build_model
    from recsys_fast.dnn.pipeline import numpy_batch, plan_batches

    f = tiny_features
    keras.utils.set_random_seed(3)
    model = build_model(f.num_classes, feature_vocab_size=f.feature_vocab_size)
    outs = []
    for widths in ("tight", "bucket"):
        plan = plan_batches(f, 32, boundaries=[8], shuffle=False, widths=widths)
        out = np.zeros((f.n_examples, f.num_classes), dtype=np.float32)
        for rows, w in zip(plan.rows, plan.widths, strict=True):
            x, _y = numpy_batch(f, rows, w)
            out[rows] = keras.ops.convert_to_numpy(model(list(x), training=False))
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-7)


def test_auto_pipeline_choices_follow_the_keras_backend():
    keras = pytest.importorskip("keras")
    from recsys_fast.dnn.train import resolve_pipeline

    name = keras.backend.backend()
    pipeline, widths, jit = resolve_pipeline("auto", "auto", "auto")
    assert pipeline == ("tf" if name == "tensorflow" else "numpy")
    assert jit is (name == "jax")
    assert widths == ("bucket" if jit else "tight")
    assert resolve_pipeline("numpy", "auto", True) == ("numpy", "bucket", True)
    assert resolve_pipeline("tf", "tight", False) == ("tf", "tight", False)
    for bad in (("pandas", "auto", False), ("auto", "wide", False), ("auto", "auto", "yes")):
        with pytest.raises(ValueError):
            resolve_pipeline(*bad)
