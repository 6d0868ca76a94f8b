"""The DNN on any Keras 3 backend (TensorFlow, JAX, PyTorch), with or without TensorFlow.

GPU machines may carry JAX or PyTorch but no TensorFlow. The model (:mod:`.model`) uses
``keras.ops`` / ``keras.random`` only, the numpy batcher (:class:`.pipeline.NumpyBatches`) feeds
``Model.fit`` directly, and TensorFlow is imported lazily (tf.data pipeline, TF device query)
only. This module proves it and measures it, from a fresh process::

    python -m recsys_fast.dnn.portable --keras-backend jax --hide-tensorflow \\
        train --data 1m --epochs 3 --out dnn-jax-1m.json
    python -m recsys_fast.dnn.portable --keras-backend torch --hide-tensorflow \\
        forward --weights w.npz --out y.npz

``--keras-backend`` sets ``KERAS_BACKEND`` and ``--hide-tensorflow`` makes ``import tensorflow``
fail as if it were not installed; both act before Keras is imported, which is why this module
imports Keras only inside functions (and why ``recsys_fast.dnn`` imports its names lazily).

* ``forward``: the course model on a fixed batch of the data (all examples, one padded batch),
  inference and training mode, written as npz. ``--save-weights`` stores the weights of a fresh
  seeded model; ``--weights`` loads such a file, so two backends can be compared on the same
  weights (the tests do: TensorFlow against JAX / PyTorch, to 1e-5).
* ``train``: leave-last-out split, ``epochs`` timed one by one (the first includes tracing /
  compilation, so the steady ``examples_per_s`` is the median of the later ones), loss per
  epoch, recall@k on the held-out items, the device Keras used; written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
_HIDDEN = ("tensorflow", "tf_keras", "tensorboard")
TINY = "tiny"


def hide_tensorflow() -> None:
    """Make TensorFlow look not installed in this process, as on a GPU box without it.

    ``sys.modules[name] = None`` is Python's own marker for "not importable": ``import
    tensorflow`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec("tensorflow")``
    returns ``None`` (PyTorch probes optional packages that way).

    Raises
    ------
    RuntimeError
        TensorFlow is already imported (too late to hide it).
    """
    if sys.modules.get("tensorflow") is not None:
        raise RuntimeError("tensorflow is already imported; hide it before importing keras")
    for name in _HIDDEN:
        if sys.modules.get(name) is None:
            sys.modules[name] = None


def tensorflow_imported() -> bool:
    """True when TensorFlow was actually imported in this process."""
    return sys.modules.get("tensorflow") is not None


def use_keras_backend(name: str) -> None:
    """Select Keras' backend for this process (before Keras is imported).

    Raises
    ------
    ValueError
        Unknown backend name.
    RuntimeError
        Keras is already imported with another backend.
    """
    if name not in KERAS_BACKENDS:
        raise ValueError(f"keras backend must be one of {KERAS_BACKENDS}, got {name!r}")
    keras = sys.modules.get("keras")
    if keras is not None:
        current = keras.backend.backend()
        if current != name:
            raise RuntimeError(
                f"keras is already imported with backend {current!r}; start a new process "
                f"with KERAS_BACKEND={name}"
            )
    os.environ["KERAS_BACKEND"] = name


def tiny_interactions(seed: int = 0):
    """A small deterministic synthetic data set (96 users, 80 items) for equivalence tests."""
    from recsys_fast.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(96, 80, 1_200, min_per_user=6, seed=seed, name=TINY)
    return generate(spec)


def load_data(name: str, seed: int = 0):
    """``"tiny"`` or a synthetic scale (``"100k"``, ``"1m"``, ``"10m"``, ``"25m"``)."""
    from recsys_fast.data.synthetic import SCALES, generate

    if name == TINY:
        return tiny_interactions(seed)
    if name in SCALES:
        return generate(name, seed=seed)
    raise ValueError(f"unknown data {name!r}; valid: {TINY}, {', '.join(SCALES)}")


def device_description() -> dict:
    """Keras' backend, the device class it computes on and that device's name."""
    import keras

    from recsys_fast.dnn.train import keras_device

    name = keras.backend.backend()
    out = {"keras_backend": name, "keras_version": keras.__version__, "device": keras_device()}
    if name == "jax":
        import jax

        out["device_name"] = str(jax.devices()[0])
        out["jax_version"] = jax.__version__
    elif name == "torch":
        import torch

        out["torch_version"] = torch.__version__
        if torch.cuda.is_available():
            out["device_name"] = torch.cuda.get_device_name(0)
    elif name == "tensorflow":
        import tensorflow as tf

        out["tensorflow_version"] = tf.__version__
    out["tensorflow_imported"] = tensorflow_imported()
    return out


def _one_batch(features):
    """Every example in one batch, one width per field (the shapes do not depend on order)."""
    from recsys_fast.dnn.pipeline import numpy_batch, plan_batches

    plan = plan_batches(features, features.n_examples, boundaries=[], shuffle=False,
                        widths="bucket")
    x, y = numpy_batch(features, plan.rows[0], plan.widths[0])
    return plan.rows[0], [np.asarray(a) for a in x], y


def forward(weights: str | Path | None = None, save_weights: str | Path | None = None,
            data: str = TINY, seed: int = 0) -> dict:
    """Outputs of the course model on one batch of ``data`` (see the module docstring).

    Returns
    -------
    dict
        ``rows``, ``inference`` (softmax, ``training=False``), ``training`` (batch-norm on
        batch statistics), ``user_vector`` (the 64-d tower output, inference).
    """
    import keras

    from recsys_fast.dnn.features import build_user_features
    from recsys_fast.dnn.model import build_model, user_tower

    features = build_user_features(load_data(data, seed))
    keras.utils.set_random_seed(seed)
    model = build_model(features.num_classes, feature_vocab_size=features.feature_vocab_size)
    if weights is not None:
        with np.load(weights) as f:
            model.set_weights([f[f"w{i:03d}"] for i in range(len(f.files))])
    if save_weights is not None:
        np.savez(save_weights, **{f"w{i:03d}": w for i, w in enumerate(model.get_weights())})
    rows, x, _y = _one_batch(features)
    to_np = keras.ops.convert_to_numpy
    return {
        "rows": rows,
        "inference": to_np(model(x, training=False)),
        "training": to_np(model(x, training=True)),
        "user_vector": to_np(user_tower(model)(x, training=False)),
    }


def train(data: str = TINY, *, epochs: int = 3, batch_size: int = 256, loss: str = "full",
          num_sampled: int = 1024, k: int = 10, seed: int = 0, boundaries: list[int] | None = None,
          widths: str = "auto", jit_compile: bool | str = "auto",
          mixed_precision: bool = False) -> dict:
    """Train on the leave-last-out split of ``data``; per-epoch times, losses and recall@k.

    Parameters
    ----------
    data : str
        ``"tiny"`` or a synthetic scale.
    epochs : int
        Epochs, each timed on its own; the first includes tracing/compilation.
    batch_size, loss, num_sampled, boundaries, widths, jit_compile, mixed_precision
        As :func:`recsys_fast.dnn.train.prepare_optimised` (``jit_compile="auto"``: XLA where
        the backend supports it).
    k : int
        Cut-off of recall@k on the held-out items.
    """
    from recsys_fast.dnn.features import split_last
    from recsys_fast.dnn.train import evaluate_recall, fit_optimised_epochs, prepare_optimised

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t0 = time.perf_counter()
    inter = load_data(data, seed)
    train_f, test_f = split_last(inter)
    prep_s = time.perf_counter() - t0
    state = prepare_optimised(train_f, batch_size=batch_size, loss=loss, num_sampled=num_sampled,
                              boundaries=boundaries, widths=widths, jit_compile=jit_compile,
                              mixed_precision=mixed_precision, seed=seed)
    losses, seconds = [], []
    for _ in range(epochs):
        out = fit_optimised_epochs(state, 1)
        losses.append(float(out["loss"][-1]))
        seconds.append(float(out["seconds"]))
    n = train_f.n_examples
    steady = seconds[1:] or seconds
    t1 = time.perf_counter()
    recall = evaluate_recall(state.model, test_f, k=min(k, test_f.n_items))
    return {
        **device_description(),
        "data": data,
        "n_examples": n,
        "num_classes": train_f.num_classes,
        "epochs": epochs,
        "losses": losses,
        "epoch_seconds": seconds,
        "first_epoch_examples_per_s": n / seconds[0],
        "examples_per_s": n / float(np.median(steady)),
        "recall": recall,
        "evaluate_seconds": time.perf_counter() - t1,
        "prepare_data_seconds": prep_s,
        "options": state.options,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recsys_fast.dnn.portable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keras-backend", choices=KERAS_BACKENDS, default=None,
                   help="KERAS_BACKEND for this process (default: the environment's)")
    p.add_argument("--hide-tensorflow", action="store_true",
                   help="make 'import tensorflow' fail, as on a machine without it")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forward", help="model outputs on one batch -> npz")
    f.add_argument("--out", required=True)
    f.add_argument("--weights", help="npz of weights to load (from --save-weights)")
    f.add_argument("--save-weights", help="write the model's weights here (npz)")
    f.add_argument("--data", default=TINY)
    f.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="train, time epochs, recall@k -> JSON")
    t.add_argument("--out", required=True)
    t.add_argument("--data", default=TINY)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--loss", choices=("full", "sampled"), default="full")
    t.add_argument("--num-sampled", type=int, default=1024)
    t.add_argument("--k", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--one-bucket", action="store_true", help="no length buckets (boundaries=[])")
    t.add_argument("--boundaries", default=None,
                   help="comma list of bucket boundaries, e.g. 48,144,464 (fewer shapes to "
                   "compile); default: geometric, x1.5")
    t.add_argument("--widths", choices=("auto", "tight", "bucket"), default="auto")
    t.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto")
    t.add_argument("--mixed-precision", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.keras_backend:
        use_keras_backend(args.keras_backend)
    if args.hide_tensorflow:
        hide_tensorflow()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.command == "forward":
        res = forward(args.weights, args.save_weights, data=args.data, seed=args.seed)
        np.savez(out, **res)
        print(json.dumps({**device_description(), "out": str(out)}))
        return 0
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    bounds = None
    if args.one_bucket:
        bounds = []
    elif args.boundaries:
        try:
            bounds = [int(b) for b in args.boundaries.split(",") if b.strip()]
        except ValueError:
            raise SystemExit(f"--boundaries must be integers like 48,144,464, got "
                             f"{args.boundaries!r}") from None
    res = train(args.data, epochs=args.epochs, batch_size=args.batch_size, loss=args.loss,
                num_sampled=args.num_sampled, k=args.k, seed=args.seed,
                boundaries=bounds, widths=args.widths,
                jit_compile=jit, mixed_precision=args.mixed_precision)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(json.dumps({k: res[k] for k in ("keras_backend", "device", "examples_per_s",
                                          "losses", "recall")}, default=str))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
