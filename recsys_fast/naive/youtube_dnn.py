"""Naive reference: the course's YouTube candidate-generation DNN, trained as the course does.

The course pads every user's lists with ``pad_sequences`` and calls::

    model.fit([pad_sequences(watched), pad_sequences(liked), pad_sequences(disliked),
               pad_sequences(genre)], labels, steps_per_epoch=1, epochs=E)

so Keras sizes the batch as ``ceil(n / steps) = n``: the whole padded data set is ONE batch per
epoch, padded to the longest history. We keep that, with ``padding="post"`` (see
:mod:`recsys_fast.dnn.model` for why) and the one shared model definition. Features are built the
pandas way (sort, ``groupby``, Python lists per user); their semantics are documented in
:mod:`recsys_fast.dnn.features`, whose vectorised builder must agree exactly.

Memory guard: before padding, :func:`naive_memory_bytes` estimates the padded id arrays, the
embedding activations of that single batch and the softmax output; more than is available raises
:class:`~recsys_fast.errors.MemoryBudgetError` naming the size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from recsys_fast.data.interactions import Interactions
from recsys_fast.dnn.features import (
    DISLIKED_MAX_RATING,
    FIELDS,
    LIKED_MIN_RATING,
    Ragged,
    UserFeatures,
    check_inputs,
    encode_items,
    genre_vocabulary,
    record_epochs,
    resolve_history,
)
from recsys_fast.dnn.model import EMBEDDING_DIMS, build_model, compile_course
from recsys_fast.memory import check_memory

# float32 copies of each embedding activation alive in one training step: the lookup, its
# L2-normalised version, and a gradient
ACTIVATION_COPIES = 3
# float32 (batch, classes) arrays in one step: logits, softmax, gradient
LOGIT_COPIES = 3


def build_features(
    inter: Interactions,
    *,
    history: str = "course",
    max_history: int | None = None,
    leave_out: int = 0,
    labels_per_user: int = 1,
    min_history: int = 1,
) -> UserFeatures:
    """Per-user ragged lists and labels, built row by row with pandas (see module docstring)."""
    check_inputs(inter, leave_out, min_history, labels_per_user)
    cap = resolve_history(history, max_history)
    tokens, vocab = encode_items(inter, None, "error")
    genre_names = genre_vocabulary(inter.items)
    genre_token = {g: t for t, g in enumerate(genre_names, start=1)}
    genres_of = {}
    for item_id, text in inter.items["genres"].fillna("").astype(str).items():
        genres_of[item_id] = [genre_token[g] for g in text.split("|") if g]

    df = inter.ratings[["user_id", "timestamp", "rating"]].copy()
    df["token"] = tokens
    df["item_id"] = inter.ratings["item_id"].to_numpy()
    df = df.sort_values(["user_id", "timestamp"], kind="stable")
    counts = np.zeros(len(vocab) + 1, dtype=np.int64)
    out = {f: [] for f in FIELDS}
    user_ids, labels = [], []
    dropped = 0
    for user_id, group in df.groupby("user_id", sort=True):
        items = group["token"].tolist()
        ids = group["item_id"].tolist()
        rates = group["rating"].tolist()
        newest = len(items) - 1 - leave_out
        for t in items[: max(newest + 1, 0)]:
            counts[t] += 1
        positions = [p for p in range(newest - labels_per_user + 1, newest + 1)
                     if p >= min_history]
        if not positions:
            dropped += 1
        for label_pos in positions:
            lo = 0 if cap is None else max(label_pos - cap, 0)
            hist = range(lo, label_pos)
            out["watched"].append([items[p] for p in hist])
            out["liked"].append([items[p] for p in hist if rates[p] >= LIKED_MIN_RATING])
            out["disliked"].append([items[p] for p in hist if rates[p] <= DISLIKED_MAX_RATING])
            out["genre"].append(sorted({g for p in hist for g in genres_of.get(ids[p], [])}))
            user_ids.append(user_id)
            labels.append(items[label_pos])
    if not labels:
        raise ValueError(
            f"{inter.name}: no user has {min_history} earlier item(s) before the label "
            f"(leave_out={leave_out}); every user has too short a history"
        )
    return UserFeatures(
        user_ids=np.asarray(user_ids),
        labels=np.asarray(labels, dtype=np.int32),
        **{f: Ragged.from_lists(out[f]) for f in FIELDS},
        item_ids=np.asarray(vocab),
        genre_names=genre_names,
        item_counts=counts,
        history=history,
        max_history=cap,
        leave_out=leave_out,
        n_users_dropped=dropped,
    )


def naive_memory_bytes(
    n_users: int,
    max_lengths: dict[str, int] | int,
    num_classes: int,
    embedding_dims: int = EMBEDDING_DIMS,
) -> int:
    """Bytes the naive one-batch epoch needs: padded ids, embedding activations, softmax.

    ``max_lengths`` maps each field to its padded width (an int means that width for all four).
    """
    if isinstance(max_lengths, int):
        max_lengths = dict.fromkeys(FIELDS, max_lengths)
    positions = int(n_users) * sum(int(max_lengths[f]) for f in FIELDS)
    ids = positions * 4
    activations = positions * embedding_dims * 4 * ACTIVATION_COPIES
    logits = int(n_users) * int(num_classes) * 4 * LOGIT_COPIES
    return ids + activations + logits


def check_naive_memory(inter: Interactions, available: int | None = None) -> int:
    """Refuse (MemoryBudgetError) before building anything if the naive path cannot fit.

    Uses only rating counts: each user's history is at most their ratings minus one, and genre
    lists at most the number of genres. Returns the estimate in bytes.
    """
    counts = np.bincount(inter.user_idx, minlength=inter.n_users)
    longest = max(int(counts.max(initial=1)) - 1, 1)
    n_genres = max(len(genre_vocabulary(inter.items)), 1)
    widths = {"watched": longest, "liked": longest, "disliked": longest, "genre": n_genres}
    needed = naive_memory_bytes(inter.n_users, widths, inter.n_items + 1)
    check_memory(
        f"naive YouTube DNN on {inter.name} ({inter.n_users} users padded to {longest}, "
        f"{inter.n_items + 1} classes)",
        needed,
        available,
    )
    return needed


def pad_inputs(features: UserFeatures) -> list[np.ndarray]:
    """The four lists padded as the course does (``pad_sequences``), but ``padding="post"``."""
    widths = features.max_lengths()
    needed = naive_memory_bytes(features.n_examples, widths, features.num_classes)
    check_memory(f"naive YouTube DNN batch of {features.n_examples} users", needed)
    return [
        keras.utils.pad_sequences(
            features.field(f).to_lists(), padding="post", maxlen=max(widths[f], 1), dtype="int32"
        )
        for f in FIELDS
    ]


@dataclass
class NaiveState:
    """What the naive benchmark case holds between setup and the timed epochs."""

    features: UserFeatures
    model: keras.Model
    inputs: list[np.ndarray]
    labels: np.ndarray
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0


def prepare_naive(
    data: Interactions | UserFeatures, seed: int = 0, *, model: keras.Model | None = None
) -> NaiveState:
    """Memory check, features, padded arrays and a compiled course model (not yet trained)."""
    if isinstance(data, Interactions):
        check_naive_memory(data)
        features = build_features(data)
    elif isinstance(data, UserFeatures):
        features = data
    else:
        raise TypeError(f"expected Interactions or UserFeatures, got {type(data).__name__}")
    inputs = pad_inputs(features)
    if model is None:
        keras.utils.set_random_seed(seed)
        model = build_model(features.num_classes, feature_vocab_size=features.feature_vocab_size)
        compile_course(model)
    return NaiveState(features, model, inputs, features.labels.copy())


def fit_naive_epochs(state: NaiveState, epochs: int, verbose: int = 0) -> dict:
    """Train ``epochs`` more epochs, the course way (one whole-data batch per epoch).

    Returns the Keras history plus ``seconds`` and ``examples_per_s`` of this call.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    t0 = time.perf_counter()
    hist = state.model.fit(
        state.inputs, state.labels, steps_per_epoch=1, epochs=epochs, verbose=verbose
    )
    return record_epochs(state, hist.history, time.perf_counter() - t0, epochs)


def fit_naive(features: UserFeatures, epochs: int, seed: int = 0):
    """Build, compile and train the course model; returns ``(model, history)``."""
    state = prepare_naive(features, seed)
    history = fit_naive_epochs(state, epochs)
    return state.model, history


def recommend(model: keras.Model, features: UserFeatures, k: int) -> np.ndarray:
    """Top-``k`` original item ids per example (row order of ``features``), course style:
    ``predict`` on the padded arrays, then a full ``argsort`` of every row. Class 0 (padding)
    is never recommended."""
    if not 1 <= k <= features.n_items:
        raise ValueError(f"k must be in [1, {features.n_items}] (the catalogue), got {k}")
    pred = model.predict(pad_inputs(features), verbose=0)
    top = np.argsort(pred[:, 1:], axis=1)[:, ::-1][:, :k] + 1
    return features.tokens_to_items(top)
