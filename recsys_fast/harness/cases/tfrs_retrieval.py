"""The TensorFlow Recommenders peer of the YouTube DNN: a two-tower retrieval model.

It learns from the same examples as ours (one :class:`~recsys_fast.dnn.features.UserFeatures`
row per user: watched, liked, disliked and genre tokens, the label item) fed by the same tf.data
pipeline (:func:`~recsys_fast.dnn.pipeline.make_tf_dataset`: length-bucketed batches of 256,
cached, shuffled per epoch), with the same optimiser (Adam, learning rate 0.003).

* User (query) tower: our network up to the 64-d user vector, in ``tf_keras`` layers: watched
  and genre through one shared embedding, liked and disliked through another (16-d), each
  L2-normalised and mean-pooled over the non-padding positions, concatenated, Dense(64)-ReLU x3,
  BatchNormalization.
* Item (candidate) tower: a 64-d embedding per item token.
* Task: ``tfrs.tasks.Retrieval()`` with its defaults: softmax cross-entropy over the batch's own
  label items (in-batch negatives, summed over the batch), scores are query . candidate.
  ``sampling_correction=True`` passes each label's in-batch sampling probability (its share of
  the training labels) as ``candidate_sampling_probability`` (scores - log p, the "logQ"
  correction TFRS documents for popularity-skewed in-batch negatives); the benchmark case uses
  the defaults.

So it computes a different function from ours (a full softmax over every item with a bias per
item): compare throughput and recall@k, never outputs. Recall@k scores every item exactly
(brute force, as ``tfrs.layers.factorized_top_k.BruteForce``) and ranks them.

tensorflow-recommenders 0.7 needs ``tf.keras`` to be Keras 2: the ``tf-keras`` package and
``TF_USE_LEGACY_KERAS=1`` set before TensorFlow is imported (:data:`LEGACY_KERAS_ENV`; the
benchmark's worker process sets it). ``recsys_fast`` itself uses ``keras`` (3) directly, which
that variable does not change, so both run in one process.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field

import numpy as np

from recsys_fast.dnn.features import UserFeatures, record_epochs
from recsys_fast.dnn.model import DENSE_UNITS, EMBEDDING_DIMS, LEARNING_RATE
from recsys_fast.errors import BackendUnavailableError

LEGACY_KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}
BATCH_SIZE = 256
LOSS_RTOL = 1e-5


def legacy_keras_problem() -> str | None:
    """Why ``tf.keras`` cannot be Keras 2 in this process (one line), or ``None``."""
    if os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        return ("tensorflow-recommenders needs tf.keras = Keras 2: TF_USE_LEGACY_KERAS=1 must "
                "be set before TensorFlow is imported (its benchmark worker sets it; in-process "
                "runs do not)")
    import tensorflow as tf

    name = tf.keras.__name__
    if not name.startswith("tf_keras"):
        return (f"tf.keras is {name} (Keras 3) although TF_USE_LEGACY_KERAS is set: it was "
                "resolved before the variable was set")
    return None


@functools.cache
def _model_classes():
    """The tf_keras / tfrs classes, defined once tf.keras is known to be Keras 2."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs
    import tf_keras

    class UserTower(tf_keras.Model):
        def __init__(self, feature_vocab_size: int, num_classes: int):
            super().__init__(name="user_tower")
            self.features_embeddings = tf_keras.layers.Embedding(
                feature_vocab_size, EMBEDDING_DIMS, name="features_embeddings")
            self.labels_embeddings = tf_keras.layers.Embedding(
                num_classes, EMBEDDING_DIMS, name="labels_embeddings")
            self.dense = [tf_keras.layers.Dense(DENSE_UNITS, activation="relu",
                                                name=f"dense_{i}") for i in (1, 2, 3)]
            self.norm = tf_keras.layers.BatchNormalization(name="dense_3_batch_norm")

        @staticmethod
        def pooled(embedding, ids):
            # as our model: L2-normalise (+ epsilon), mean over non-padding ids, 0 if none
            e = tf.math.l2_normalize(embedding(ids), axis=-1) + tf_keras.backend.epsilon()
            valid = tf.cast(tf.not_equal(ids, 0), e.dtype)
            total = tf.reduce_sum(e * valid[..., None], axis=1)
            return total / tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)

        def call(self, inputs, training=False):
            watched, liked, disliked, genre = inputs
            h = tf.concat([self.pooled(self.features_embeddings, watched),
                           self.pooled(self.features_embeddings, genre),
                           self.pooled(self.labels_embeddings, liked),
                           self.pooled(self.labels_embeddings, disliked)], axis=1)
            for layer in self.dense:
                h = layer(h)
            return self.norm(h, training=training)

    class RetrievalModel(tfrs.Model):
        def __init__(self, feature_vocab_size: int, num_classes: int,
                     label_probability: np.ndarray | None = None):
            super().__init__(name="tfrs_retrieval")
            self.user_tower = UserTower(feature_vocab_size, num_classes)
            self.item_tower = tf_keras.layers.Embedding(num_classes, DENSE_UNITS,
                                                        name="item_embeddings")
            self.task = tfrs.tasks.Retrieval()
            self.label_probability = (None if label_probability is None else
                                      tf.constant(label_probability, tf.float32))

        def loss_of(self, query, labels, candidates, training=False):
            extra = {} if self.label_probability is None else {
                "candidate_sampling_probability": tf.gather(self.label_probability, labels)}
            return self.task(query, candidates, compute_metrics=not training, **extra)

        def compute_loss(self, inputs, training=False):
            x, labels = inputs
            return self.loss_of(self.user_tower(x, training=training), labels,
                                self.item_tower(labels), training=training)

    return RetrievalModel


@dataclass
class RetrievalState:
    """Features, the TFRS model and its input pipeline (the optimised path's batches)."""

    features: UserFeatures
    model: object  # RetrievalModel (tfrs.Model on tf_keras)
    data: object  # tf.data.Dataset of (x, label) batches
    plan: object  # recsys_fast.dnn.pipeline.BatchPlan
    options: dict
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0


def label_probability(features: UserFeatures) -> np.ndarray:
    """Share of the training labels per item token (0 for padding and never-label items)."""
    counts = np.bincount(features.labels, minlength=features.num_classes)
    return counts / max(1, features.n_examples)


def prepare_retrieval(features: UserFeatures, *, batch_size: int = BATCH_SIZE, seed: int = 0,
                      sampling_correction: bool = False) -> RetrievalState:
    """The compiled TFRS model and the tf.data batches of ``features``, ready to train
    (``sampling_correction``: see the module docstring).

    Raises
    ------
    BackendUnavailableError
        ``tf.keras`` is not Keras 2 in this process (see :func:`legacy_keras_problem`).
    """
    problem = legacy_keras_problem()
    if problem:
        raise BackendUnavailableError(problem)
    import tf_keras

    from recsys_fast.dnn.pipeline import make_tf_dataset, plan_batches

    if not isinstance(features, UserFeatures):
        raise TypeError(f"expected UserFeatures, got {type(features).__name__}")
    plan = plan_batches(features, batch_size, seed=seed, shuffle=True)
    data = make_tf_dataset(features, plan, target="full", shuffle=True, seed=seed)
    tf_keras.utils.set_random_seed(seed)
    model = _model_classes()(features.feature_vocab_size, features.num_classes,
                             label_probability(features) if sampling_correction else None)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=LEARNING_RATE))
    tokens = sum(int(features.field(f).lengths.sum())
                 for f in ("watched", "liked", "disliked", "genre"))
    options = {"batch_size": batch_size, "loss": "in-batch softmax (tfrs.tasks.Retrieval)",
               "sampling_correction": bool(sampling_correction),
               "n_batches": len(plan), "padding_overhead": plan.padded_tokens() / max(1, tokens),
               "keras": f"tf_keras {tf_keras.__version__}"}
    return RetrievalState(features, model, data, plan, options)


def fit_retrieval_epochs(state: RetrievalState, epochs: int) -> dict:
    """Train ``epochs`` more epochs; returns the history, ``seconds``, ``examples_per_s``."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t0 = time.perf_counter()
    hist = state.model.fit(state.data, epochs=epochs, verbose=0)
    return record_epochs(state, hist.history, time.perf_counter() - t0, epochs)


def _batches(features: UserFeatures, batch_size: int):
    """``(rows, x, labels)`` over all examples, in unshuffled length buckets."""
    from recsys_fast.dnn.pipeline import numpy_batch, plan_batches

    plan = plan_batches(features, batch_size, shuffle=False)
    for rows, widths in zip(plan.rows, plan.widths, strict=True):
        x, y = numpy_batch(features, rows, widths)
        yield rows, x, y


def user_vectors(state: RetrievalState, features: UserFeatures,
                 batch_size: int = 512) -> np.ndarray:
    """Query-tower output ``(n_examples, 64)`` in feature row order (inference mode)."""
    out = np.zeros((features.n_examples, DENSE_UNITS), dtype=np.float32)
    for rows, x, _y in _batches(features, batch_size):
        out[rows] = state.model.user_tower(x, training=False).numpy()
    return out


def item_vectors(state: RetrievalState) -> np.ndarray:
    """Candidate-tower output of every item token ``1..n_items`` (row ``t - 1``)."""
    return state.model.item_tower.get_weights()[0][1:]


def evaluate_retrieval_recall(state: RetrievalState, features: UserFeatures, k: int = 10,
                              batch_size: int = 512) -> dict:
    """Recall@k (= hit-rate@k: one held-out item per example) of exact top-k retrieval over
    every item, the same measure as :func:`recsys_fast.dnn.train.evaluate_recall`."""
    if int(k) != k or not 1 <= k <= features.n_items:
        raise ValueError(f"k must be an integer in [1, {features.n_items}], got {k}")
    items = item_vectors(state)
    users = user_vectors(state, features, batch_size)
    hits = 0
    for start in range(0, features.n_examples, batch_size):
        rows = np.arange(start, min(start + batch_size, features.n_examples))
        scores = users[rows] @ items.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] + 1  # item tokens
        hits += int((top == features.labels[rows, None]).any(axis=1).sum())
    rate = hits / features.n_examples
    return {f"recall@{k}": rate, f"hit_rate@{k}": rate, "k": k, "n": features.n_examples}


def in_batch_loss_error(state: RetrievalState) -> tuple[float, str]:
    """Relative difference between the TFRS task's loss on the largest planned batch and the
    in-batch softmax cross-entropy recomputed in float64 numpy from its towers' outputs
    (scores = query . candidate, less log p of the candidate with ``sampling_correction``;
    target = the diagonal; summed over the batch), and what was compared. Shows that what is
    timed is the in-batch softmax of its own two towers."""
    import tensorflow as tf

    from recsys_fast.dnn.pipeline import numpy_batch

    i = int(np.argmax([len(r) for r in state.plan.rows]))  # a full batch
    rows, widths = state.plan.rows[i], state.plan.widths[i]
    x, y = numpy_batch(state.features, rows, widths)
    query = state.model.user_tower(x, training=False)
    cand = state.model.item_tower(tf.constant(y))
    tfrs_loss = float(state.model.loss_of(query, tf.constant(y), cand))
    s = query.numpy().astype(np.float64) @ cand.numpy().astype(np.float64).T
    if state.options["sampling_correction"]:
        s = s - np.log(label_probability(state.features)[y])[None, :]
    top = s.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(s - top).sum(axis=1)) + top[:, 0]
    ours = float(np.sum(log_z - np.diag(s)))
    err = abs(tfrs_loss - ours) / max(abs(ours), 1e-12)
    return err, f"in-batch softmax loss from its towers' dot products (numpy), {len(rows)} users"
