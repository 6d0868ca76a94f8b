"""Input pipelines for the YouTube DNN: length-bucketed, padded batches from ragged histories.

One numpy *batch plan* (:func:`plan_batches`) decides which users share a batch and the padded
width of each batch; both pipelines follow it, so they yield the same batches:

* :func:`make_tf_dataset` - tf.data: ragged tensors, one vectorised map per batch
  (``tf.gather`` of ragged rows + ``to_tensor``, one call in flight per core), ``cache``,
  per-epoch batch shuffle, ``prefetch(2)``, autotuning off;
* :class:`NumpyBatches` - a ``keras.utils.PyDataset`` doing the same in numpy, for Keras on JAX or
  PyTorch (TensorFlow absent).

Bucketing: users are grouped by the length of their watched history; bucket ``b`` holds lengths
in ``(boundaries[b-1], boundaries[b]]`` and its batches are padded to ``boundaries[b]`` (the last
bucket to the longest history), so a model compiled per shape (XLA) sees a few shapes only.
Liked, disliked and genre lists are padded to the first boundary that holds their longest row
in the batch (widths stay on the same small grid). Empty buckets produce no batches. Users keep a
fixed batch (shuffled once, by ``seed``); the order of batches is reshuffled each epoch when
``shuffle`` is set.

Width policy ``widths="bucket"`` pads watched, liked and disliked to the bucket's boundary and
genre to one width for the whole data set, so each bucket has one batch shape (two with its
smaller last batch). Backends that compile per shape (JAX's ``jit``, XLA with ``jit_compile``)
then compile a handful of programs instead of one per batch; the padding is masked, so the
model's output is the same under either policy.

Targets: ``"full"`` yields ``(x, label)`` for the full softmax; ``"sampled"`` yields
``((*x, label), 0)`` for :func:`recsys_fast.dnn.model.build_sampled_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from recsys_fast.dnn.features import FIELDS, UserFeatures
from recsys_fast.memory import available_cores

TARGETS = ("full", "sampled")
WIDTH_POLICIES = ("tight", "bucket")


@dataclass
class BatchPlan:
    """Users of each batch (indices into the features) and each batch's padded widths."""

    rows: list[np.ndarray]
    widths: np.ndarray  # (n_batches, 4): watched, liked, disliked, genre
    boundaries: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_examples(self) -> int:
        return int(sum(len(r) for r in self.rows))

    def padded_tokens(self) -> int:
        """Positions in all padded batches (for the padding-overhead figure)."""
        return int(sum(len(r) * int(w.sum()) for r, w in zip(self.rows, self.widths, strict=True)))


def default_boundaries(max_len: int, *, first: int = 8, growth: float = 1.5) -> np.ndarray:
    """Geometric bucket boundaries ``8, 16, 24, 40, ...`` (multiples of 8) below ``max_len``.

    Padding waste per batch stays under ``1 - 1/growth`` of the positions.
    """
    out: list[int] = []
    b = float(first)
    while b < max_len:
        v = int(np.ceil(b / 8.0) * 8)
        if not out or v > out[-1]:
            out.append(v)
        b *= growth
    return np.asarray(out, dtype=np.int64)


def plan_batches(
    features: UserFeatures,
    batch_size: int,
    *,
    boundaries: np.ndarray | list[int] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    widths: str = "tight",
) -> BatchPlan:
    """Group users into length buckets and cut each bucket into batches of ``batch_size``.

    Parameters
    ----------
    features : UserFeatures
    batch_size : int
        Users per batch (the last batch of a bucket may be smaller).
    boundaries : array-like, optional
        Strictly increasing positive ints; default :func:`default_boundaries`. ``[]`` means one
        bucket (plain batching, everything padded to the longest history).
    seed, shuffle
        Shuffle users inside each bucket and the order of the batches.
    widths : {"tight", "bucket"}
        ``"tight"``: each field padded to the first grid width holding its longest row in the
        batch; ``"bucket"``: one shape per bucket (see the module docstring).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if widths not in WIDTH_POLICIES:
        raise ValueError(f"widths must be one of {WIDTH_POLICIES}, got {widths!r}")
    lengths = features.watched.lengths
    max_len = int(lengths.max(initial=0))
    if boundaries is None:
        bounds = default_boundaries(max_len)
    else:
        bounds = np.asarray(boundaries, dtype=np.int64).reshape(-1)
        if len(bounds) and (bounds[0] < 1 or np.any(np.diff(bounds) <= 0)):
            raise ValueError(f"boundaries must be strictly increasing positive ints: {bounds}")
    bucket = np.searchsorted(bounds, lengths, side="left")
    upper = np.append(bounds, max(max_len, 1))
    rng = np.random.default_rng(seed)
    field_lengths = [features.field(f).lengths for f in FIELDS]
    grid = np.unique(
        np.concatenate([upper, [max(int(x.max(initial=0)), 1) for x in field_lengths]])
    )
    genre_all = max(int(field_lengths[3].max(initial=0)), 1)
    genre_fixed = int(grid[np.searchsorted(grid, genre_all)])
    rows: list[np.ndarray] = []
    batch_widths: list[list[int]] = []
    for b in range(len(upper)):
        members = np.flatnonzero(bucket == b)
        if len(members) == 0:
            continue  # empty bucket: no batch
        if shuffle:
            members = rng.permutation(members)
        for start in range(0, len(members), int(batch_size)):
            batch = members[start : start + int(batch_size)]
            rows.append(batch)
            # each field padded to the first grid width that holds its longest row in the batch,
            # so widths come from a small set (few traced shapes) and short fields stay short
            longest = [int(x[batch].max(initial=0)) for x in field_lengths]
            fit = [max(int(grid[np.searchsorted(grid, m)]), 1) for m in longest]
            if widths == "bucket":
                # liked/disliked are subsets of watched, so the boundary holds them; max()
                # only guards features built some other way
                fit = [max(int(upper[b]), f) for f in fit[:3]] + [max(genre_fixed, fit[3])]
            batch_widths.append(fit)
    order = rng.permutation(len(rows)) if shuffle else np.arange(len(rows))
    return BatchPlan(
        rows=[rows[i] for i in order],
        widths=np.asarray(batch_widths, dtype=np.int64).reshape(-1, 4)[order],
        boundaries=bounds,
    )


def numpy_batch(features: UserFeatures, rows: np.ndarray, widths, target: str = "full"):
    """One padded batch in numpy: ``(x, y)`` with x the course-ordered tuple of 4 arrays."""
    x = tuple(features.field(f).pad(rows, int(w)) for f, w in zip(FIELDS, widths, strict=True))
    labels = features.labels[rows]
    if target == "sampled":
        return (*x, labels), np.zeros(len(rows), dtype=np.int32)
    return x, labels


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


class NumpyBatches(keras.utils.PyDataset):
    """The batch plan as a Keras ``PyDataset`` (numpy only; works without TensorFlow)."""

    def __init__(
        self,
        features: UserFeatures,
        plan: BatchPlan,
        *,
        target: str = "full",
        shuffle: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_target(target)
        self.features = features
        self.plan = plan
        self.target = target
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(plan))

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int):
        j = int(self._order[i])
        return numpy_batch(self.features, self.plan.rows[j], self.plan.widths[j], self.target)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.plan))


def make_tf_dataset(
    features: UserFeatures,
    plan: BatchPlan,
    *,
    target: str = "full",
    shuffle: bool = True,
    seed: int = 0,
    cache: bool = True,
    prefetch: bool = True,
):
    """The batch plan as a ``tf.data.Dataset`` of padded batches (see module docstring).

    Raises
    ------
    ImportError
        TensorFlow is not installed (use :class:`NumpyBatches`).
    """
    import tensorflow as tf

    check_target(target)
    if len(plan) == 0:
        raise ValueError("the batch plan is empty: no examples to batch")
    ragged = {
        f: tf.RaggedTensor.from_row_splits(
            tf.constant(features.field(f).values), tf.constant(features.field(f).splits)
        )
        for f in FIELDS
    }
    labels = tf.constant(features.labels)
    lengths = np.fromiter((len(r) for r in plan.rows), dtype=np.int64, count=len(plan))
    plan_rows = tf.RaggedTensor.from_row_lengths(
        tf.constant(np.concatenate(plan.rows).astype(np.int64)), tf.constant(lengths)
    )
    ds = tf.data.Dataset.from_tensor_slices((plan_rows, tf.constant(plan.widths)))

    def gather(rows, widths):  # one whole batch at a time: vectorised
        n = tf.shape(rows, out_type=tf.int64)[0]
        x = tuple(
            tf.gather(ragged[f], rows).to_tensor(default_value=0, shape=tf.stack([n, widths[k]]))
            for k, f in enumerate(FIELDS)
        )
        y = tf.gather(labels, rows)
        if target == "sampled":
            return (*x, y), tf.zeros_like(y)
        return x, y

    ds = ds.map(gather, num_parallel_calls=available_cores(), deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(plan), seed=seed, reshuffle_each_iteration=True)
    if prefetch:
        ds = ds.prefetch(PREFETCH_BATCHES)
    # Fixed parallelism instead of tf.data's autotuning: with it, about one Keras ``fit`` call
    # in four ended 0.55 s late at 1m (an epoch of 0.7 s; the time went after the last batch,
    # in the teardown of the epoch's iterator), measured on a 2-vCPU Xeon; without it, 0 of 14.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


PREFETCH_BATCHES = 2  # padded batches ready ahead of the model: one being used, one next


def numpy_batches_as_tf_dataset(batches: NumpyBatches):
    """Feed a :class:`NumpyBatches` to Keras on the TensorFlow backend.

    Keras 3 turns a ``PyDataset`` into tf.data with a signature guessed from its first two
    batches, which fixes widths that vary between buckets; this wrapper declares every width
    variable instead. (On JAX/PyTorch Keras iterates the ``PyDataset`` directly.)
    """
    import tensorflow as tf

    ids = tf.TensorSpec((None, None), tf.int32)
    vec = tf.TensorSpec((None,), tf.int32)
    x_spec = (ids,) * len(FIELDS) + ((vec,) if batches.target == "sampled" else ())
    signature = (x_spec, vec)

    def generate():
        for i in range(len(batches)):
            yield batches[i]
        batches.on_epoch_end()

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return ds.prefetch(tf.data.AUTOTUNE)
