"""Optimised training of the course network, evaluation, and the hooks the benchmark wraps.

``prepare_optimised`` / ``fit_optimised_epochs`` mirror ``prepare_naive`` / ``fit_naive_epochs``
of :mod:`recsys_fast.naive.youtube_dnn` (which imports this package's features and network; this
package never imports the naive one): setup outside the clock, then
whole epochs timed, ``examples_per_s`` = examples x epochs / seconds. The first call traces the
training function for each batch shape; run one warm-up epoch in setup before timing.

Evaluation (:func:`evaluate_recall`): one held-out item per user (the label of a
``leave_out=0`` :class:`UserFeatures`, e.g. the test side of :func:`split_last`), so recall@k and
hit-rate@k are the same number; both are reported under their names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from recsys_fast.data.interactions import Interactions
from recsys_fast.dnn.features import (
    UserFeatures,
    build_user_features,
    record_epochs,
    split_last,
)
from recsys_fast.dnn.model import (
    LEARNING_RATE,
    OUTPUT_LAYER,
    build_model,
    build_sampled_model,
    compile_course,
)
from recsys_fast.dnn.pipeline import (
    BatchPlan,
    NumpyBatches,
    default_boundaries,
    make_tf_dataset,
    numpy_batch,
    numpy_batches_as_tf_dataset,
    plan_batches,
)
from recsys_fast.errors import BackendUnavailableError

LOSSES = ("full", "sampled")
PIPELINES = ("auto", "tf", "numpy")
WIDTHS = ("auto", "tight", "bucket")
# Training steps per graph call on TensorFlow: on a loaded 2-vCPU Intel Xeon, 8 steps per call
# ran a 1m epoch (31 batches of 256) 1.46x faster (median of 5 interleaved epochs) than 1;
# 64 (the whole epoch) gave no more. See results/LOG.md, "dnn_epoch".
STEPS_PER_EXECUTION_TF = 8

__all__ = [
    "OptimisedState",
    "evaluate_recall",
    "fit_optimised_epochs",
    "pipeline_throughput",
    "popularity_recall",
    "predict_bucketed",
    "prepare_optimised",
    "recommend_topk",
    "seconds_to_reach",
    "split_last",
    "train_until",
]


@dataclass
class OptimisedState:
    """Features, the full-softmax model, the model actually trained and its input pipeline."""

    features: UserFeatures
    model: keras.Model
    train_model: keras.Model
    data: object  # what ``fit`` consumes: a tf.data.Dataset or a NumpyBatches
    plan: BatchPlan
    options: dict
    source: object = None  # the pipeline itself (NumpyBatches, or the tf.data.Dataset)
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0


def keras_device() -> str:
    """Where Keras' backend places computations: ``"gpu"`` or ``"cpu"`` (JAX, PyTorch, TF)."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if name == "jax":
        import jax

        return "gpu" if jax.default_backend() in ("gpu", "cuda", "rocm") else "cpu"
    if name == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def _gpu_visible() -> bool:
    return keras_device() == "gpu"


def resolve_pipeline(
    pipeline: str, widths: str, jit_compile: bool | str
) -> tuple[str, str, bool]:
    """``"auto"`` choices for the current Keras backend: ``(pipeline, widths, jit_compile)``.

    pipeline: tf.data on TensorFlow, the numpy ``PyDataset`` elsewhere (TensorFlow may be
    absent). jit_compile: on for JAX (without it Keras runs JAX op by op, orders of magnitude
    slower), off for TensorFlow (``tf.function`` graphs; XLA would recompile per batch shape)
    and PyTorch (``torch.compile`` takes minutes). widths: ``"bucket"`` where programs are
    compiled per input shape (``jit_compile`` on), else ``"tight"`` (least padding).
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    if widths not in WIDTHS:
        raise ValueError(f"widths must be one of {WIDTHS}, got {widths!r}")
    if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
        raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
    name = keras.backend.backend()
    if pipeline == "auto":
        pipeline = "tf" if name == "tensorflow" else "numpy"
    if jit_compile == "auto":
        jit_compile = name == "jax"
    if widths == "auto":
        widths = "bucket" if jit_compile else "tight"
    return pipeline, widths, bool(jit_compile)


def resolve_steps_per_execution(steps: int | str) -> int:
    """``"auto"``: :data:`STEPS_PER_EXECUTION_TF` on the TensorFlow backend, else 1."""
    if steps == "auto":
        return STEPS_PER_EXECUTION_TF if keras.backend.backend() == "tensorflow" else 1
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps_per_execution must be a positive int or 'auto', got {steps!r}")
    return int(steps)


def prepare_optimised(
    data: Interactions | UserFeatures,
    *,
    history: str = "course",
    max_history: int | None = None,
    batch_size: int = 256,
    loss: str = "full",
    num_sampled: int = 1024,
    sampler: str = "log_uniform",
    boundaries: list[int] | None = None,
    pipeline: str = "auto",
    widths: str = "auto",
    steps_per_execution: int | str = "auto",
    jit_compile: bool | str = "auto",
    mixed_precision: bool = False,
    seed: int = 0,
    shuffle: bool = True,
    model: keras.Model | None = None,
    prior_bias: bool = False,
) -> OptimisedState:
    """Features (vectorised), bucketed pipeline and a compiled model, ready to train.

    Parameters
    ----------
    data : Interactions or UserFeatures
    history, max_history
        ``"course"`` (full history) or ``"paper"`` (most recent 50); ignored for UserFeatures.
    loss : {"full", "sampled"}
        Full softmax as the course, or sampled softmax with ``num_sampled`` popularity-based
        negatives (``sampler``: ``"log_uniform"`` or ``"unigram"``), for large catalogues.
    pipeline : {"auto", "tf", "numpy"}
        tf.data, or the numpy ``PyDataset`` (no TensorFlow needed); ``auto``: tf.data on the
        TensorFlow backend, numpy on JAX / PyTorch.
    widths : {"auto", "tight", "bucket"}
        Padding policy of :func:`~recsys_fast.dnn.pipeline.plan_batches`; ``auto``: ``bucket``
        (few shapes) on JAX or with ``jit_compile=True``, else ``tight``.
    steps_per_execution, jit_compile
        Passed to ``Model.compile``; ``steps_per_execution="auto"``:
        :data:`STEPS_PER_EXECUTION_TF` on TensorFlow (the training steps run in one graph
        call, fewer Python round trips per epoch; the same steps in the same order), 1
        elsewhere. ``jit_compile="auto"``: on for JAX only (see :func:`resolve_pipeline`).
    mixed_precision : bool
        ``mixed_float16`` layers; GPU only (raises BackendUnavailableError when Keras' backend
        sees none).
    model : keras.Model, optional
        An existing course model to train (e.g. to share weights with a naive run).
    prior_bias : bool
        Start the output layer's bias at the log of each item's share of the training ratings
        (:func:`log_prior`, add-one smoothed) instead of zeros: the untrained network then
        ranks by popularity, and training learns the departures from it. Off by default (the
        course's initialisation, which the naive path shares).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if prior_bias and model is not None:
        raise ValueError("prior_bias initialises a new model; it cannot be combined with model=")
    pipeline, widths, jit_compile = resolve_pipeline(pipeline, widths, jit_compile)
    if mixed_precision and not _gpu_visible():
        raise BackendUnavailableError(
            "mixed_precision=True needs a GPU visible to Keras' "
            f"{keras.backend.backend()} backend; none found"
        )
    if isinstance(data, Interactions):
        features = build_user_features(data, history=history, max_history=max_history)
    elif isinstance(data, UserFeatures):
        features = data
    else:
        raise TypeError(f"expected Interactions or UserFeatures, got {type(data).__name__}")
    plan = plan_batches(
        features, batch_size, boundaries=boundaries, seed=seed, shuffle=shuffle, widths=widths
    )
    if model is None:
        keras.utils.set_random_seed(seed)
        model = build_model(
            features.num_classes,
            feature_vocab_size=features.feature_vocab_size,
            mixed_precision=mixed_precision,
        )
    if prior_bias:
        out = model.get_layer(OUTPUT_LAYER)
        kernel, _bias = out.get_weights()
        out.set_weights([kernel, log_prior(features.item_counts)])
    steps_per_execution = resolve_steps_per_execution(steps_per_execution)
    compile_opts = {"steps_per_execution": steps_per_execution, "jit_compile": jit_compile}
    if loss == "full":
        train_model = compile_course(model, **compile_opts)
    else:
        train_model = build_sampled_model(
            model, features.item_counts, num_sampled, sampler=sampler, seed=seed
        )
        train_model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            **compile_opts,
        )
    if pipeline == "tf":
        ds = make_tf_dataset(features, plan, target=loss, shuffle=shuffle, seed=seed)
        source = ds
    else:
        source = NumpyBatches(features, plan, target=loss, shuffle=shuffle, seed=seed)
        ds = source
        if keras.backend.backend() == "tensorflow":
            ds = numpy_batches_as_tf_dataset(source)
    options = {
        "history": features.history,
        "max_history": features.max_history,
        "batch_size": batch_size,
        "loss": loss,
        "num_sampled": num_sampled if loss == "sampled" else None,
        "sampler": sampler if loss == "sampled" else None,
        "pipeline": pipeline,
        "widths": widths,
        "keras_backend": keras.backend.backend(),
        "steps_per_execution": steps_per_execution,
        "jit_compile": jit_compile,
        "mixed_precision": mixed_precision,
        "prior_bias": prior_bias,
        "n_batches": len(plan),
        "padding_overhead": plan.padded_tokens()
        / max(
            1,
            sum(
                int(features.field(f).lengths.sum())
                for f in ("watched", "liked", "disliked", "genre")
            ),
        ),
    }
    return OptimisedState(features, model, train_model, ds, plan, options, source=source)


def log_prior(item_counts: np.ndarray) -> np.ndarray:
    """float32 log of each class's add-one smoothed share of ``item_counts`` (per item token;
    class 0, padding, counts 0 and gets the smallest share)."""
    counts = np.asarray(item_counts, dtype=np.float64) + 1.0
    return np.log(counts / counts.sum()).astype(np.float32)


def fit_optimised_epochs(state: OptimisedState, epochs: int, verbose: int = 0) -> dict:
    """Train ``epochs`` more epochs; returns the Keras history, ``seconds``, ``examples_per_s``."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t0 = time.perf_counter()
    hist = state.train_model.fit(state.data, epochs=epochs, verbose=verbose, shuffle=False)
    return record_epochs(state, hist.history, time.perf_counter() - t0, epochs)


def pipeline_throughput(state: OptimisedState, n_batches: int | None = None) -> dict:
    """Input pipeline alone: examples/s to produce ``n_batches`` (default all) padded batches.

    Runs one pass to fill the tf.data cache (``first_pass_examples_per_s``), then times a second
    pass (``examples_per_s``, the steady state the model sees after epoch 1).
    """
    n = len(state.plan) if n_batches is None else min(int(n_batches), len(state.plan))
    if n < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")

    def one_pass() -> tuple[float, int]:
        t0 = time.perf_counter()
        seen = 0
        if isinstance(state.source, NumpyBatches):
            for i in range(n):
                seen += len(state.source[i][1])
        else:
            import tensorflow as tf

            # consumed in-graph, as Keras' training loop does: no per-batch Python overhead
            seen = int(
                state.source.take(n).reduce(
                    tf.constant(0, tf.int64),
                    lambda acc, batch: acc + tf.shape(batch[1], out_type=tf.int64)[0],
                )
            )
        return time.perf_counter() - t0, seen

    t_first, seen_first = one_pass()
    t, seen = one_pass()
    return {
        "batches": n,
        "examples": seen,
        "first_pass_examples_per_s": seen_first / t_first,
        "examples_per_s": seen / t,
    }


def _inference_batches(features: UserFeatures, batch_size: int):
    """``(rows, x)`` over all examples in length-bucketed batches (no shuffling).

    On JAX the forward pass is compiled once per batch shape (:func:`_forward`), so the batches
    use few shapes: coarse buckets (x4) and ``widths="bucket"``. Padding is masked, so the
    output is the same under any plan.
    """
    if keras.backend.backend() == "jax":
        longest = int(features.watched.lengths.max(initial=0))
        plan = plan_batches(features, batch_size, shuffle=False, widths="bucket",
                            boundaries=default_boundaries(longest, growth=4.0))
    else:
        plan = plan_batches(features, batch_size, shuffle=False)
    for rows, widths in zip(plan.rows, plan.widths, strict=True):
        x, _y = numpy_batch(features, rows, widths)
        yield rows, list(x)


def _forward(model: keras.Model):
    """Inference-mode forward pass returning numpy: jit-compiled ``predict_on_batch`` on JAX
    (op-by-op eager JAX is ~10x slower), the eager call elsewhere (no retracing per shape)."""
    if keras.backend.backend() == "jax":
        return model.predict_on_batch
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def predict_bucketed(model: keras.Model, features: UserFeatures, batch_size: int = 512):
    """Softmax output ``(n_examples, num_classes)`` in feature row order, computed over
    length-bucketed batches in inference mode. Dense output: for small data and tests."""
    out = np.zeros((features.n_examples, features.num_classes), dtype=np.float32)
    forward = _forward(model)
    for rows, x in _inference_batches(features, batch_size):
        out[rows] = forward(x)
    return out


def _check_k(k: int, features: UserFeatures) -> None:
    if int(k) != k or not 1 <= k <= features.n_items:
        raise ValueError(
            f"k must be an integer in [1, {features.n_items}] (the catalogue), got {k}"
        )


def _topk_tokens(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k item tokens per row, best first (class 0, padding, excluded)."""
    s = scores[:, 1:]
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1) + 1


def recommend_topk(
    model: keras.Model, features: UserFeatures, k: int, batch_size: int = 512
) -> np.ndarray:
    """Top-``k`` original item ids per example (row order of ``features``), streamed by batch."""
    _check_k(k, features)
    out = np.zeros((features.n_examples, k), dtype=np.int64)
    forward = _forward(model)
    for rows, x in _inference_batches(features, batch_size):
        scores = forward(x)
        out[rows] = _topk_tokens(scores, k)
    return features.tokens_to_items(out)


def evaluate_recall(
    model: keras.Model, features: UserFeatures, k: int = 10, batch_size: int = 512
) -> dict:
    """Recall@k and hit-rate@k of the held-out label of each example (streamed, bounded memory)."""
    _check_k(k, features)
    hits = 0
    forward = _forward(model)
    for rows, x in _inference_batches(features, batch_size):
        scores = forward(x)
        top = _topk_tokens(scores, k)
        hits += int((top == features.labels[rows, None]).any(axis=1).sum())
    rate = hits / features.n_examples
    return {f"recall@{k}": rate, f"hit_rate@{k}": rate, "k": k, "n": features.n_examples}


def popularity_recall(item_counts: np.ndarray, features: UserFeatures, k: int = 10) -> float:
    """Recall@k of recommending every example the k items with the most ratings
    (``item_counts``: per item token, index 0 padding; ties by token): the most-popular
    baseline of the held-out labels of ``features``."""
    _check_k(k, features)
    top = np.argsort(-np.asarray(item_counts)[1:], kind="stable")[:k] + 1
    return float(np.isin(features.labels, top).mean())


def train_until(
    state,
    fit,
    valid: UserFeatures,
    *,
    k: int = 10,
    max_epochs: int = 30,
    patience: int = 3,
    max_seconds: float | None = None,
    watch: dict | None = None,
    recall=None,
    progress=None,
) -> dict:
    """Train ``state`` one epoch at a time (``fit(state, 1)``) with early stopping on the
    recall@k of ``valid``; keep the best epoch's weights.

    Stops after ``patience`` epochs without a better validation recall, at ``max_epochs``, or
    once the training seconds pass ``max_seconds``; then restores the weights of the best
    validation epoch (the first of equals). ``watch``: other feature sets (name -> features)
    whose recall@k is recorded after every epoch for reporting, never for a decision (e.g. the
    test split, for time to a recall). ``recall(state, features, k)``: the measure,
    :func:`evaluate_recall` of ``state.model`` by default. ``progress(row)``: called after
    each epoch.

    Returns ``{"epochs": [{"epoch", "train_s", "loss", "valid", <watch names>...}],
    "best_epoch", "best_valid", "stopped"}``; ``train_s`` is the cumulative training time
    (fit calls only, evaluation excluded).
    """
    if max_epochs < 1 or patience < 1:
        raise ValueError(f"max_epochs and patience must be >= 1, got {max_epochs}, {patience}")
    if recall is None:
        recall = lambda st, f, kk: evaluate_recall(st.model, f, k=kk)[f"recall@{kk}"]  # noqa: E731
    rows, best, best_weights, since, train_s = [], -1.0, None, 0, 0.0
    stopped = "max_epochs"
    for epoch in range(1, max_epochs + 1):
        out = fit(state, 1)
        train_s += float(out["seconds"])
        row = {"epoch": epoch, "train_s": train_s,
               "loss": float(np.asarray(out.get("loss", [np.nan]))[-1]),
               "valid": float(recall(state, valid, k))}
        for name, feats in (watch or {}).items():
            row[name] = float(recall(state, feats, k))
        rows.append(row)
        if progress is not None:
            progress(row)
        if row["valid"] > best:
            best, since = row["valid"], 0
            best_weights = [np.array(w, copy=True) for w in state.model.get_weights()]
        else:
            since += 1
        if since >= patience:
            stopped = "patience"
            break
        if max_seconds is not None and train_s >= max_seconds:
            stopped = "max_seconds"
            break
    state.model.set_weights(best_weights)
    best_row = max(rows, key=lambda r: (r["valid"], -r["epoch"]))
    return {"epochs": rows, "best_epoch": best_row["epoch"], "best_valid": best_row["valid"],
            "stopped": stopped}


def seconds_to_reach(curve: dict, name: str, target: float) -> float | None:
    """Training seconds until ``name``'s recall (a column of :func:`train_until`'s rows) first
    reached ``target``; None when it never did."""
    for row in curve["epochs"]:
        if row[name] >= target:
            return row["train_s"]
    return None
