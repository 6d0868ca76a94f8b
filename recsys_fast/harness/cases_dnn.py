"""Cases of the YouTube candidate-generation DNN (one training epoch; TensorFlow placement).

``dnn_epoch``: one epoch of the course network with the full softmax. naive =
``naive.youtube_dnn`` (the whole padded data set as one batch, ``steps_per_epoch=1``);
optimised = ``dnn.train`` (length-bucketed tf.data batches of 256, cached and prefetched).
``dnn_epoch_sampled``: the optimised path with sampled softmax (1,024 log-uniform negatives),
the variant meant for large catalogues. ``dnn_pipeline``: the tf.data input pipeline alone
(steady-state pass over all batches). All report examples/s. The first call of each case (a
full epoch) is the warm-up that traces the training function.

Backend: ``cpu`` runs under ``tf.device('/CPU:0')``; ``gpu`` needs a GPU visible to
TensorFlow and runs under ``tf.device('/GPU:0')``. Verdict of the optimised epochs: after the
first (untimed) epoch, the bucketed inference of the trained model equals the naive padded
forward pass with the same weights (256 users, atol 1e-5). The training runs themselves differ
by batching; loss equivalence on one batch is tested in ``tests/test_dnn.py``.
"""

from __future__ import annotations

from recsys_fast.harness.registry import Case, Registry, Verdict

TRAINING = Verdict("n/a", "training run; forward-pass equivalence in tests/test_dnn.py")


def _naive():
    """``recsys_fast.naive.youtube_dnn``, imported after ``recsys_fast.dnn``: importing it first
    in a fresh process hits a circular import (dnn.train re-exports from it)."""
    import recsys_fast.dnn  # noqa: F401
    from recsys_fast.naive import youtube_dnn

    return youtube_dnn


def _device(backend: str):
    import tensorflow as tf

    if backend == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            from recsys_fast.errors import BackendUnavailableError

            raise BackendUnavailableError("no GPU visible to TensorFlow")
        return tf.device("/GPU:0")
    return tf.device("/CPU:0")


def _setup(kind: str, backend: str):
    def setup(ctx, scale):
        inter = ctx.interactions(scale)
        device = _device(backend)
        with device:
            if kind == "naive":
                state = _naive().prepare_naive(inter, seed=0)
            else:
                from recsys_fast.dnn.train import prepare_optimised

                loss = "sampled" if kind == "sampled" else "full"
                state = prepare_optimised(inter, loss=loss, seed=0)
        return {"state": state, "device": device, "scale": scale, "kind": kind}

    return setup


def _run_naive(st):
    with st["device"]:
        return _naive().fit_naive_epochs(st["state"], 1)


def _run_optimised(st):
    from recsys_fast.dnn.train import fit_optimised_epochs

    with st["device"]:
        return fit_optimised_epochs(st["state"], 1)


def _run_pipeline(st):
    from recsys_fast.dnn.train import pipeline_throughput

    return pipeline_throughput(st["state"])


def _check(ctx, st, result) -> Verdict:
    return TRAINING


N_FORWARD_CHECK = 256
FORWARD_ATOL = 1e-5


def _check_forward(ctx, st, result) -> Verdict:
    """After the first (untimed) epoch: the optimised path's bucketed inference equals the
    naive path's padded forward pass (``pad_sequences`` as the course) with the same weights."""
    import numpy as np

    from recsys_fast.dnn.train import predict_bucketed

    state = st["state"]
    n = min(N_FORWARD_CHECK, state.features.n_examples)
    sub = state.features.subset(np.arange(n))
    with st["device"]:
        padded = state.model.predict(_naive().pad_inputs(sub), verbose=0, batch_size=n)
        bucketed = predict_bucketed(state.model, sub)
    against = f"naive padded forward, same weights, {n} users, atol {FORWARD_ATOL:g}"
    err = float(np.max(np.abs(np.asarray(padded, np.float64) - bucketed)))
    if err > FORWARD_ATOL:
        return Verdict(f"mismatch: max abs difference {err:.3g}", against)
    return Verdict("equal", against)


def _examples(st) -> float:
    return float(st["state"].features.n_examples)


def _extra(st, result) -> dict:
    out = {"loss_after_first_epoch": float(result["loss"][-1])} if "loss" in result else {}
    options = getattr(st["state"], "options", None)
    if options:
        out.update({k: options[k] for k in ("batch_size", "loss", "n_batches",
                                            "padding_overhead") if k in options})
    if "first_pass_examples_per_s" in result:
        out["first_pass_examples_per_s"] = result["first_pass_examples_per_s"]
    return out


def _mem_naive(spec) -> int:
    naive_memory_bytes = _naive().naive_memory_bytes
    # the longest history is close to the per-user cap (45% of the items in the presets)
    longest = max(1, int(0.45 * spec.n_items))
    widths = {"watched": longest, "liked": longest, "disliked": longest, "genre": 19}
    return naive_memory_bytes(spec.n_users, widths, spec.n_items + 1)


def _mem_optimised(spec) -> int:
    # features + cached padded batches + one batch's activations/logits (full softmax)
    return spec.n_ratings * 64 + 256 * (spec.n_items + 1) * 4 * 6 + (512 << 20)


def register(reg: Registry) -> None:
    reg.add_kernel("dnn_epoch", "YouTube DNN: one training epoch, full softmax")
    reg.add_kernel("dnn_epoch_sampled", "YouTube DNN: one epoch, sampled softmax (optimised)")
    reg.add_kernel("dnn_pipeline", "YouTube DNN: tf.data input pipeline alone")
    for be in ("cpu", "gpu"):
        common = dict(backend=be, check=_check, examples=_examples, extra=_extra)
        if be == "cpu":
            reg.add(Case(kernel="dnn_epoch", impl="naive", setup=_setup("naive", be),
                         run=_run_naive, memory_estimate=_mem_naive,
                         note="padded numpy, one batch per epoch", **common))
        checked = dict(common, check=_check_forward)
        reg.add(Case(kernel="dnn_epoch", impl="optimised", setup=_setup("full", be),
                     run=_run_optimised, memory_estimate=_mem_optimised,
                     note="tf.data, bucketed batches of 256", **checked))
        reg.add(Case(kernel="dnn_epoch_sampled", impl="optimised", setup=_setup("sampled", be),
                     run=_run_optimised, memory_estimate=_mem_optimised,
                     note="tf.data + sampled softmax (1024 negatives)", **checked))
    reg.add(Case(kernel="dnn_pipeline", impl="optimised", backend="cpu",
                 setup=_setup("full", "cpu"), run=_run_pipeline, check=_check,
                 examples=lambda st: 2.0 * st["state"].features.n_examples, extra=_extra,
                 memory_estimate=_mem_optimised, note="pipeline_throughput (two passes)"))
