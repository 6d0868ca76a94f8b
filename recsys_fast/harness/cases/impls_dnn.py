"""Implementations of the YouTube candidate-generation DNN (one training epoch; TensorFlow placement).

``dnn_epoch``: one epoch of the course network with the full softmax. naive =
``naive.youtube_dnn`` (the whole padded data set as one batch, ``steps_per_epoch=1``);
optimised = ``dnn.train`` (length-bucketed tf.data batches of 256, cached and prefetched).
``dnn_epoch_sampled``: the optimised path with sampled softmax (1,024 log-uniform negatives),
the variant meant for large catalogues. ``dnn_pipeline``: the tf.data input pipeline alone
(steady-state pass over all batches). Peer of ``dnn_epoch``: ``tfrs``, TensorFlow
Recommenders' two-tower retrieval model on the same batches (in-batch softmax, a different
function: compared on throughput and recall@k). All report examples/s. The first call of each case (a
full epoch) is the warm-up that traces the training function.

Backend: ``cpu`` runs under ``tf.device('/CPU:0')``; ``gpu`` needs a GPU visible to
TensorFlow and runs under ``tf.device('/GPU:0')``. Verdict of the optimised epochs: after the
first (untimed) epoch, the bucketed inference of the trained model equals the naive padded
forward pass with the same weights (256 users, atol 1e-5). The training runs themselves differ
by batching; loss equivalence on one batch is tested in ``tests/test_dnn.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict

TRAINING = Verdict("n/a", "training run; forward-pass equivalence in tests/test_dnn.py")
N_FORWARD_CHECK = 256
FORWARD_ATOL = 1e-5


def _naive():
    """``recsys_fast.naive.youtube_dnn`` (imported on use: it imports Keras)."""
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


@dataclass
class TrainState:
    scale: str
    device: Any  # the tf.device context the calls run under
    train: Any  # the prepared training state (model, features, batches)


class CandidateModelImpl(Adapter):
    """One training epoch of the course's candidate-generation network (examples/s)."""

    loss = "full"

    def setup(self, ctx, scale: str) -> TrainState:
        inter = ctx.interactions(scale)
        device = _device(self.backend)
        with device:
            train = self.prepare(inter)
        return TrainState(scale, device, train)

    def prepare(self, inter):
        from recsys_fast.dnn.train import prepare_optimised

        return prepare_optimised(inter, loss=self.loss, seed=0)

    def run(self, st: TrainState):
        from recsys_fast.dnn.train import fit_optimised_epochs

        with st.device:
            return fit_optimised_epochs(st.train, 1)

    def check(self, ctx, st: TrainState, result) -> Verdict:
        """After the first (untimed) epoch: the bucketed inference equals the naive padded
        forward pass (``pad_sequences`` as the course) with the same weights."""
        import numpy as np

        from recsys_fast.dnn.train import predict_bucketed

        train = st.train
        n = min(N_FORWARD_CHECK, train.features.n_examples)
        sub = train.features.subset(np.arange(n))
        with st.device:
            padded = train.model.predict(_naive().pad_inputs(sub), verbose=0, batch_size=n)
            bucketed = predict_bucketed(train.model, sub)
        against = f"naive padded forward, same weights, {n} users, atol {FORWARD_ATOL:g}"
        err = float(np.max(np.abs(np.asarray(padded, np.float64) - bucketed)))
        if err > FORWARD_ATOL:
            return Verdict(f"mismatch: max abs difference {err:.3g}", against)
        return Verdict("equal", against)

    def examples(self, st: TrainState) -> float:
        return float(st.train.features.n_examples)

    def extra(self, st: TrainState, result) -> dict:
        out = {"loss_after_first_epoch": float(result["loss"][-1])} if "loss" in result else {}
        options = getattr(st.train, "options", None)
        if options:
            out.update({k: options[k] for k in ("batch_size", "loss", "n_batches",
                                                "padding_overhead") if k in options})
        if "first_pass_examples_per_s" in result:
            out["first_pass_examples_per_s"] = result["first_pass_examples_per_s"]
        return out

    def memory_estimate(self, spec) -> int:
        # features + cached padded batches + one batch's activations/logits (full softmax)
        return spec.n_ratings * 64 + 256 * (spec.n_items + 1) * 4 * 6 + (512 << 20)


class DnnEpoch(CandidateModelImpl):
    kernel = "dnn_epoch"
    description = "YouTube DNN: one training epoch, full softmax"


class NaiveDnnEpoch(DnnEpoch):
    name = role = "naive"
    note = "padded numpy, one batch per epoch"

    def prepare(self, inter):
        return _naive().prepare_naive(inter, seed=0)

    def run(self, st: TrainState):
        with st.device:
            return _naive().fit_naive_epochs(st.train, 1)

    def memory_estimate(self, spec) -> int:
        # the longest history is close to the per-user cap (45% of the items in the presets)
        longest = max(1, int(0.45 * spec.n_items))
        widths = {"watched": longest, "liked": longest, "disliked": longest, "genre": 19}
        return _naive().naive_memory_bytes(spec.n_users, widths, spec.n_items + 1)


class OptimisedDnnEpoch(DnnEpoch):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "tf.data, bucketed batches of 256"


class DnnEpochSampled(CandidateModelImpl):
    kernel = "dnn_epoch_sampled"
    description = "YouTube DNN: one epoch, sampled softmax (optimised)"
    loss = "sampled"


class OptimisedDnnEpochSampled(DnnEpochSampled):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "tf.data + sampled softmax (1024 negatives)"


class DnnPipeline(CandidateModelImpl):
    kernel = "dnn_pipeline"
    description = "YouTube DNN: tf.data input pipeline alone"


class OptimisedDnnPipeline(DnnPipeline):
    name = role = "optimised"
    note = "pipeline_throughput (two passes)"

    def run(self, st: TrainState):
        from recsys_fast.dnn.train import pipeline_throughput

        return pipeline_throughput(st.train)

    def check(self, ctx, st, result) -> Verdict:
        return TRAINING

    def examples(self, st: TrainState) -> float:
        return 2.0 * st.train.features.n_examples


class TfrsDnnEpoch(DnnEpoch):
    """TensorFlow Recommenders' two-tower retrieval model on the same examples and batches
    (:mod:`recsys_fast.harness.cases.tfrs_retrieval`). It trains a different function (in-batch
    softmax, no per-item bias) from ours (full softmax), so it is compared on quality
    (``bench/dnn_tfrs_recall.py``) and its verdict is ``n/a``; the check verifies, after the
    first epoch, that the TFRS task's loss on one batch equals the in-batch softmax
    cross-entropy recomputed from its two towers' outputs (else a mismatch).
    Needs ``TF_USE_LEGACY_KERAS=1`` from the worker's start (``worker_env``); in-process runs
    where it is not set record the case as skipped."""

    name = "tfrs"
    note = "TFRS two-tower retrieval on tf_keras, in-batch softmax (not our full softmax)"
    requires = ("tensorflow_recommenders", "tf_keras")
    same_function = False
    worker_env = {"TF_USE_LEGACY_KERAS": "1"}

    def prepare(self, inter):
        from recsys_fast.dnn.features import build_user_features
        from recsys_fast.harness.cases.tfrs_retrieval import prepare_retrieval

        return prepare_retrieval(build_user_features(inter), seed=0)

    def run(self, st: TrainState):
        from recsys_fast.harness.cases.tfrs_retrieval import fit_retrieval_epochs

        with st.device:
            return fit_retrieval_epochs(st.train, 1)

    def check(self, ctx, st: TrainState, result) -> Verdict:
        from recsys_fast.harness.cases.tfrs_retrieval import LOSS_RTOL, in_batch_loss_error

        with st.device:
            err, what = in_batch_loss_error(st.train)
        against = ("different function (in-batch softmax): compared on quality; checked: its "
                   f"loss = {what}, rtol {LOSS_RTOL:g}")
        if not err <= LOSS_RTOL:
            return Verdict(f"mismatch: loss differs by {err:.3g} (relative)", against)
        return Verdict("n/a", against)

    def memory_estimate(self, spec) -> int:
        # features + cached padded batches + 64-d item embeddings with Adam's two slots and
        # their gradient (no full softmax)
        return spec.n_ratings * 64 + (spec.n_items + 1) * 64 * 4 * 4 + (512 << 20)

FAMILIES = (DnnEpoch, DnnEpochSampled, DnnPipeline)
