"""The course's YouTube candidate-generation network: ONE definition for naive and optimised.

Keras 3, ``keras.ops`` only inside the custom layers (no ``tf.*``), so the model also runs on the
JAX and PyTorch backends. Differences from the course code, all output-neutral except the last:

* Masking is computed explicitly from ``ids != 0`` inside the aggregator, so padding width and
  bucketing cannot change the output. (The course's ``L2NormLayer`` compacts valid positions with
  ``tf.ragged.boolean_mask(...).to_tensor()`` while passing the *uncompacted* mask on; with
  ``pad_sequences``' default ``padding="pre"`` that misaligns mask and values. Our naive path pads
  "post", where the course layer computes exactly this masked mean.)
* ``L2NormLayer`` keeps the course's ``+ keras.backend.epsilon()`` after normalising.
* A row with no valid ids (e.g. a user with nothing disliked) aggregates to the zero vector; the
  course's ragged ``reduce_mean`` gives NaN (0/0) there, which would poison training.

The graph, as the course builds it: watched + genre through ``features_embeddings``, liked +
disliked through ``labels_embeddings``, each L2-normalised and mean-pooled, concatenated
(watched, genre, liked, disliked), then Dense(64)-ReLU three times where only the third ReLU feeds
BatchNormalization; the first two BatchNormalizations are built but unused (the course passes
``dense_1_relu``/``dense_2_relu`` on), so Keras drops them from the model. Softmax over
``num_classes``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

INPUT_NAMES = ("movie_name", "like", "dislike", "genre")  # course input order
EMBEDDING_DIMS = 16
DENSE_UNITS = 64
LEARNING_RATE = 0.003
USER_VECTOR_LAYER = "dense_3_batch_norm"
OUTPUT_LAYER = "dense_output"
SAMPLERS = ("log_uniform", "unigram")


class L2NormLayer(keras.layers.Layer):
    """``x / ||x||`` along the last axis (norm floored as ``tf.math.l2_normalize``) + epsilon."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")  # 1e-12 underflows in float16
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        sq = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(sq, 1e-12)) + keras.backend.epsilon()


class MaskedEmbeddingsAggregatorLayer(keras.layers.Layer):
    """Sum or mean of embeddings over the positions whose id is not 0 (padding).

    Called as ``layer(embeddings, ids)``; an all-padding row gives the zero vector.
    """

    def __init__(self, agg_mode: str = "sum", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if agg_mode not in ("sum", "mean"):
            raise NotImplementedError(f"mode {agg_mode} not implemented!")
        self.agg_mode = agg_mode

    def call(self, embeddings, ids, mask=None):
        valid = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)
        total = ops.sum(embeddings * ops.expand_dims(valid, -1), axis=1)
        if self.agg_mode == "sum":
            return total
        count = ops.sum(valid, axis=1, keepdims=True)
        return total / ops.maximum(count, 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "agg_mode": self.agg_mode}


def build_model(
    num_classes: int,
    *,
    feature_vocab_size: int | None = None,
    embedding_dims: int = EMBEDDING_DIMS,
    dense_units: int = DENSE_UNITS,
    mixed_precision: bool = False,
    name: str = "youtube_dnn",
) -> keras.Model:
    """The course network: 4 id-sequence inputs -> softmax over ``num_classes``.

    Parameters
    ----------
    num_classes : int
        Items + 1 (class 0 is padding and never a label).
    feature_vocab_size : int, optional
        Rows of ``features_embeddings`` (watched items and genres share it); default
        ``num_classes``.
    mixed_precision : bool
        ``mixed_float16`` for the embeddings and dense layers (a GPU option); the custom layers,
        BatchNormalization and the softmax stay float32.

    Returns
    -------
    keras.Model
        Inputs (course order) ``movie_name, like, dislike, genre``: int32 ``(batch, None)``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (padding + one item), got {num_classes}")
    feature_vocab_size = num_classes if feature_vocab_size is None else int(feature_vocab_size)
    policy = "mixed_float16" if mixed_precision else None
    inputs = [keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES]
    input_title, inp_video_liked, inp_video_disliked, input_genre = inputs

    features_embedding_layer = keras.layers.Embedding(
        feature_vocab_size,
        embedding_dims,
        mask_zero=True,
        name="features_embeddings",
        dtype=policy,
    )
    labels_embedding_layer = keras.layers.Embedding(
        num_classes, embedding_dims, mask_zero=True, name="labels_embeddings", dtype=policy
    )
    avg_embeddings = MaskedEmbeddingsAggregatorLayer(agg_mode="mean", name="aggregate_embeddings")
    l2_norm_1 = L2NormLayer(name="l2_norm_1")
    dense_1 = keras.layers.Dense(dense_units, name="dense_1", dtype=policy)
    dense_2 = keras.layers.Dense(dense_units, name="dense_2", dtype=policy)
    dense_3 = keras.layers.Dense(dense_units, name="dense_3", dtype=policy)
    dense_output = keras.layers.Dense(
        num_classes, activation="softmax", name=OUTPUT_LAYER, dtype="float32"
    )

    def pooled(layer, ids):
        return avg_embeddings(l2_norm_1(layer(ids)), ids)

    avg_titles = pooled(features_embedding_layer, input_title)
    avg_genre = pooled(features_embedding_layer, input_genre)
    avg_liked = pooled(labels_embedding_layer, inp_video_liked)
    avg_disliked = pooled(labels_embedding_layer, inp_video_disliked)
    concat_inputs = keras.layers.Concatenate(axis=1)(
        [avg_titles, avg_genre, avg_liked, avg_disliked]
    )
    dense_1_relu = keras.layers.ReLU(name="dense_1_relu", dtype=policy)(dense_1(concat_inputs))
    # course quirk: this BatchNormalization's output is never used (dense_2 takes dense_1_relu)
    keras.layers.BatchNormalization(name="dense_1_batch_norm")(dense_1_relu)
    dense_2_relu = keras.layers.ReLU(name="dense_2_relu", dtype=policy)(dense_2(dense_1_relu))
    keras.layers.BatchNormalization(name="dense_2_batch_norm")(dense_2_relu)  # unused, as above
    dense_3_relu = keras.layers.ReLU(name="dense_3_relu", dtype=policy)(dense_3(dense_2_relu))
    dense_3_batch_norm = keras.layers.BatchNormalization(name=USER_VECTOR_LAYER, dtype="float32")(
        dense_3_relu
    )
    outputs = dense_output(dense_3_batch_norm)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def compile_course(model: keras.Model, **kwargs) -> keras.Model:
    """Compile as the course: Adam(0.003), sparse categorical cross-entropy, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["acc"],
        **kwargs,
    )
    return model


def user_tower(model: keras.Model) -> keras.Model:
    """The part of ``model`` that maps the four inputs to the 64-d user vector (shared weights)."""
    return keras.Model(model.inputs, model.get_layer(USER_VECTOR_LAYER).output)


def log_uniform_log_q(n_items: int) -> np.ndarray:
    """log P(rank r) of the log-uniform (Zipfian) sampler over ranks ``0..n_items-1``."""
    r = np.arange(n_items, dtype=np.float64)
    return np.log(np.log1p(1.0 / (r + 1.0)) / math.log(n_items + 1.0))


class SampledSoftmaxLogits(keras.layers.Layer):
    """Logits of the true class and ``num_sampled`` shared negatives, corrected by log Q.

    Negatives are drawn per batch inside the layer with ``keras.random`` (backend-neutral), from
    item popularity ``item_counts`` (index = item token, 0 = padding):

    * ``"log_uniform"``: Zipfian over popularity ranks, as ``tf.random.log_uniform_candidate_sampler``
      with the vocabulary sorted by frequency;
    * ``"unigram"``: proportional to ``count ** alpha`` (+1 smoothing).

    Logits use the output layer's kernel and bias, so training this head trains the full-softmax
    model. Negatives equal to the label ("accidental hits") are masked out. Output ``(batch,
    1 + num_sampled)``; the target class is always 0.
    """

    def __init__(
        self,
        output_layer: keras.layers.Dense,
        item_counts: np.ndarray,
        num_sampled: int,
        *,
        sampler: str = "log_uniform",
        alpha: float = 0.75,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        counts = np.asarray(item_counts, dtype=np.float64)
        n_items = len(counts) - 1
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if not 1 <= num_sampled:
            raise ValueError(f"num_sampled must be >= 1, got {num_sampled}")
        self.output_layer = output_layer
        self.num_sampled = int(num_sampled)
        self.sampler = sampler
        self.n_items = n_items
        self.seed_generator = keras.random.SeedGenerator(seed)
        if sampler == "log_uniform":
            # most popular item gets rank 0; ties broken by token for determinism
            rank_to_token = np.lexsort((np.arange(n_items), -counts[1:])) + 1
            log_q = np.zeros(n_items + 1)
            log_q[rank_to_token] = log_uniform_log_q(n_items)
            self._rank_to_token = ops.convert_to_tensor(rank_to_token.astype(np.int32))
        else:
            p = (counts[1:] + 1.0) ** alpha
            log_q = np.concatenate([[0.0], np.log(p / p.sum())])
            self._sampling_logits = ops.convert_to_tensor(log_q[None, 1:].astype(np.float32))
        log_q[0] = 0.0
        # expected count of each class among num_sampled draws with replacement: S * q
        self._log_expected = ops.convert_to_tensor(
            (log_q + math.log(self.num_sampled)).astype(np.float32)
        )

    def sample(self):
        """``num_sampled`` item tokens, shape ``(num_sampled,)``."""
        s = self.num_sampled
        if self.sampler == "log_uniform":
            u = keras.random.uniform((s,), seed=self.seed_generator, dtype="float32")
            rank = ops.cast(ops.floor(ops.exp(u * math.log(self.n_items + 1.0))), "int32") - 1
            rank = ops.clip(rank, 0, self.n_items - 1)
            return ops.take(self._rank_to_token, rank)
        draws = keras.random.categorical(self._sampling_logits, s, seed=self.seed_generator)
        return ops.cast(draws[0], "int32") + 1

    def call(self, user_vector, labels):
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        sampled = self.sample()
        kernel = ops.cast(self.output_layer.kernel, "float32")
        bias = ops.cast(self.output_layer.bias, "float32")
        user_vector = ops.cast(user_vector, "float32")
        w_true = ops.transpose(ops.take(kernel, labels, axis=1))
        true_logits = ops.sum(user_vector * w_true, axis=1) + ops.take(bias, labels)
        true_logits = true_logits - ops.take(self._log_expected, labels)
        sampled_logits = ops.matmul(user_vector, ops.take(kernel, sampled, axis=1))
        sampled_logits = sampled_logits + ops.take(bias, sampled)
        sampled_logits = sampled_logits - ops.take(self._log_expected, sampled)
        hit = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(sampled, 0))
        sampled_logits = ops.where(hit, -1e9, sampled_logits)
        return ops.concatenate([ops.expand_dims(true_logits, 1), sampled_logits], axis=1)


def build_sampled_model(
    model: keras.Model,
    item_counts: np.ndarray,
    num_sampled: int,
    *,
    sampler: str = "log_uniform",
    seed: int | None = None,
) -> keras.Model:
    """Training head for sampled softmax sharing every weight with ``model``.

    Inputs: the four id sequences plus ``label`` (int32 ``(batch,)``); output: logits whose
    target is class 0 (compile with ``SparseCategoricalCrossentropy(from_logits=True)``).
    """
    tower = user_tower(model)
    label = keras.Input(shape=(), dtype="int32", name="label")
    head = SampledSoftmaxLogits(
        model.get_layer(OUTPUT_LAYER),
        item_counts,
        num_sampled,
        sampler=sampler,
        seed=seed,
        name="sampled_softmax",
    )
    logits = head(tower(model.inputs), label)
    return keras.Model([*model.inputs, label], logits, name=f"{model.name}_sampled")
