"""Per-user features for the YouTube candidate-generation network, built once, vectorised.

What the course leaves open is fixed here (one source of truth; the naive pandas builder in
``recsys_fast.naive.youtube_dnn`` must produce exactly the same :class:`UserFeatures`):

* Token ids: item token ``t`` is ``item_ids[t - 1]`` (the sorted unique rated item ids), so
  ``0`` is padding and ``num_classes = n_items + 1``. Genre tokens likewise index the sorted
  genre names (``genres`` split on ``|``) from 1; as in the course, watched items and genres share
  the ``features_embeddings`` table, whose size is ``max(num_classes, n_genres + 1)``.
* Per user, ratings are ordered by timestamp (ties keep file order). With ``leave_out=0`` the
  label is the most recent item; ``leave_out=1`` holds that one out and labels the one before it
  (the train side of a leave-last-out split), and so on. The history is every earlier item,
  chronological. ``labels_per_user=L`` gives each user up to L examples, one per label position
  (the newest one allowed, and the L - 1 before it, each with its own earlier history: the
  paper's "fixed number of training examples per user"), ordered by user, then label position.
* ``liked`` = history items rated ``>= 4``; ``disliked`` = rated ``<= 2``; ``genre`` = the
  distinct genres of the history items, ascending token order.
* History mode ``"course"`` keeps the full history; ``"paper"`` keeps the most recent
  ``max_history`` (default 50) items, and liked/disliked/genre come from those items only.
* Users without ``min_history`` earlier items get no example; they are counted in
  ``n_users_dropped``. Items not in a given ``vocab`` raise (``unseen="error"``) or are dropped
  (``unseen="drop"``: removed from histories; a user whose label is unseen loses the example).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_fast.data.interactions import Interactions

FIELDS = ("watched", "liked", "disliked", "genre")
HISTORY_MODES = ("course", "paper")
PAPER_MAX_HISTORY = 50
LIKED_MIN_RATING = 4.0
DISLIKED_MAX_RATING = 2.0


@dataclass
class Ragged:
    """Variable-length int32 rows stored flat: row ``i`` is ``values[splits[i]:splits[i+1]]``."""

    values: np.ndarray
    splits: np.ndarray

    def __post_init__(self) -> None:
        self.values = np.ascontiguousarray(self.values, dtype=np.int32)
        self.splits = np.ascontiguousarray(self.splits, dtype=np.int64)
        if self.splits.ndim != 1 or len(self.splits) == 0 or self.splits[0] != 0:
            raise ValueError("splits must be a 1-D array starting at 0")
        if self.splits[-1] != len(self.values) or np.any(np.diff(self.splits) < 0):
            raise ValueError(
                f"splits end at {self.splits[-1]} but there are {len(self.values)} values, "
                "or they decrease"
            )

    @classmethod
    def from_lists(cls, rows: list) -> Ragged:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        splits = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=splits[1:])
        values = np.fromiter((v for r in rows for v in r), dtype=np.int32, count=int(splits[-1]))
        return cls(values, splits)

    def __len__(self) -> int:
        return len(self.splits) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.splits)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.splits[i] : self.splits[i + 1]]

    def to_lists(self) -> list[list[int]]:
        return [self.row(i).tolist() for i in range(len(self))]

    def take(self, rows: np.ndarray) -> Ragged:
        """The given rows, in that order, as a new ragged array."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.splits[rows], self.lengths[rows]
        splits = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=splits[1:])
        # position of each output value in ``values``: its row start plus its offset in the row
        offset = np.arange(splits[-1], dtype=np.int64) - np.repeat(splits[:-1], lengths)
        return Ragged(self.values[np.repeat(starts, lengths) + offset], splits)

    def pad(self, rows: np.ndarray, width: int | None = None) -> np.ndarray:
        """Rows as a dense int32 ``(len(rows), width)`` array, zero-padded at the end ("post").

        ``width`` defaults to the longest selected row; a row longer than ``width`` raises.
        """
        sub = self.take(rows)
        lengths = sub.lengths
        longest = int(lengths.max()) if len(lengths) else 0
        width = longest if width is None else int(width)
        if longest > width:
            raise ValueError(f"a row has {longest} values but the pad width is {width}")
        out = np.zeros((len(lengths), width), dtype=np.int32)
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        col = np.arange(len(sub.values)) - np.repeat(sub.splits[:-1], lengths)
        out[row_of, col] = sub.values
        return out

    def equals(self, other: Ragged) -> bool:
        return np.array_equal(self.values, other.values) and np.array_equal(
            self.splits, other.splits
        )


@dataclass
class UserFeatures:
    """One training/evaluation example per user: four ragged token lists and a label token."""

    user_ids: np.ndarray
    watched: Ragged
    liked: Ragged
    disliked: Ragged
    genre: Ragged
    labels: np.ndarray
    item_ids: np.ndarray
    genre_names: list[str]
    item_counts: np.ndarray  # ratings per item token (index 0 = padding, always 0)
    history: str = "course"
    max_history: int | None = None
    leave_out: int = 0
    n_users_dropped: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def n_examples(self) -> int:
        return len(self.labels)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_classes(self) -> int:
        """Softmax width: one class per item plus the padding class 0."""
        return self.n_items + 1

    @property
    def feature_vocab_size(self) -> int:
        """Rows of ``features_embeddings``, shared by watched items and genres (as the course)."""
        return max(self.num_classes, len(self.genre_names) + 1)

    def field(self, name: str) -> Ragged:
        if name not in FIELDS:
            raise KeyError(f"unknown feature {name!r}; valid: {FIELDS}")
        return getattr(self, name)

    def max_lengths(self) -> dict[str, int]:
        return {f: int(self.field(f).lengths.max(initial=0)) for f in FIELDS}

    def tokens_to_items(self, tokens: np.ndarray) -> np.ndarray:
        """Original item ids of item tokens (token 0, padding, has none and raises)."""
        tokens = np.asarray(tokens)
        if np.any(tokens < 1) or np.any(tokens > self.n_items):
            raise ValueError(f"item tokens must lie in [1, {self.n_items}]")
        return self.item_ids[tokens - 1]

    def subset(self, rows: np.ndarray) -> UserFeatures:
        """The examples at ``rows`` (vocabularies unchanged)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = UserFeatures(
            user_ids=self.user_ids[rows],
            labels=self.labels[rows],
            **{f: self.field(f).take(rows) for f in FIELDS},
            item_ids=self.item_ids,
            genre_names=self.genre_names,
            item_counts=self.item_counts,
            history=self.history,
            max_history=self.max_history,
            leave_out=self.leave_out,
            n_users_dropped=self.n_users_dropped,
        )
        return out


def resolve_history(history: str, max_history: int | None) -> int | None:
    """Check the history mode and return the cap it implies (None = no cap)."""
    if history not in HISTORY_MODES:
        raise ValueError(f"history must be one of {HISTORY_MODES}, got {history!r}")
    if history == "paper":
        max_history = PAPER_MAX_HISTORY if max_history is None else max_history
    if max_history is not None and (int(max_history) != max_history or max_history < 1):
        raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
    return None if max_history is None else int(max_history)


def genre_vocabulary(items: pd.DataFrame) -> list[str]:
    """Sorted distinct genre names in an items frame (``genres`` joined by ``|``)."""
    names: set[str] = set()
    for text in items["genres"].fillna("").astype(str):
        names.update(g for g in text.split("|") if g)
    return sorted(names)


def item_genre_tokens(items: pd.DataFrame, item_ids: np.ndarray, genre_names: list[str]) -> Ragged:
    """Genre tokens of each item in ``item_ids`` (items missing from the frame have none)."""
    lookup = {g: t for t, g in enumerate(genre_names, start=1)}
    genres = items["genres"].fillna("").astype(str)
    genres = genres[~genres.index.duplicated(keep="last")]
    text = genres.reindex(item_ids).fillna("")
    rows = [sorted({lookup[g] for g in s.split("|") if g}) for s in text]
    return Ragged.from_lists(rows)


def check_inputs(inter: Interactions, leave_out: int, min_history: int,
                 labels_per_user: int = 1) -> None:
    if not isinstance(inter, Interactions):
        raise TypeError(f"expected an Interactions, got {type(inter).__name__}")
    if isinstance(leave_out, bool) or not isinstance(leave_out, (int, np.integer)) \
            or leave_out < 0:
        raise ValueError(f"leave_out must be an int >= 0, got {leave_out!r}")
    if isinstance(labels_per_user, bool) or not isinstance(labels_per_user, (int, np.integer)) \
            or labels_per_user < 1:
        raise ValueError(f"labels_per_user must be an int >= 1, got {labels_per_user!r}")
    if min_history < 0:
        raise ValueError(f"min_history must be >= 0, got {min_history}")
    if inter.n_ratings == 0:
        raise ValueError(f"{inter.name}: no ratings, so no user histories to learn from")


def encode_items(inter: Interactions, vocab: np.ndarray | None, unseen: str):
    """Item tokens of every rating (0 = unseen and dropped) and the vocabulary used."""
    if unseen not in ("error", "drop"):
        raise ValueError(f"unseen must be 'error' or 'drop', got {unseen!r}")
    if vocab is None:
        return inter.item_idx.astype(np.int32) + 1, np.asarray(inter.item_ids)
    vocab = np.asarray(vocab)
    if len(vocab) == 0 or np.any(np.diff(vocab) <= 0):
        raise ValueError("vocab must be the sorted unique item ids of a previous UserFeatures")
    pos = np.searchsorted(vocab, inter.item_ids)
    pos_clipped = np.minimum(pos, len(vocab) - 1)
    known = vocab[pos_clipped] == inter.item_ids
    if not known.all() and unseen == "error":
        bad = inter.item_ids[~known]
        raise ValueError(
            f"{inter.name}: {len(bad)} item ids are not in the vocabulary, e.g. "
            f"{bad[:5].tolist()}; pass unseen='drop' to ignore them"
        )
    token_of = np.where(known, pos_clipped + 1, 0).astype(np.int32)
    return token_of[inter.item_idx], vocab


def build_user_features(
    inter: Interactions,
    *,
    history: str = "course",
    max_history: int | None = None,
    leave_out: int = 0,
    labels_per_user: int = 1,
    min_history: int = 1,
    vocab: np.ndarray | None = None,
    unseen: str = "error",
) -> UserFeatures:
    """Build the examples of an :class:`Interactions` (one per user by default), numpy only.

    Parameters
    ----------
    inter : Interactions
        Ratings with ``user_id, item_id, rating, timestamp``; items with ``genres``.
    history : {"course", "paper"}
        Full history, or the most recent ``max_history`` (default 50) items.
    max_history : int, optional
        History cap (also allowed in "course" mode).
    leave_out : int
        How many most recent items to hold out after the newest label (module docstring).
    labels_per_user : int
        Examples per user: the newest allowed label position and the ones before it, each with
        the history before it (a user with a shorter history gets fewer).
    min_history : int
        A label needs this many earlier items; users with no such label are dropped (counted in
        ``n_users_dropped``).
    vocab, unseen
        Item vocabulary of another ``UserFeatures`` (its ``item_ids``) and what to do with
        items outside it: ``"error"`` or ``"drop"``.

    Returns
    -------
    UserFeatures

    Raises
    ------
    ValueError
        Bad options, unseen items with ``unseen="error"``, or no user with enough history.
    """
    check_inputs(inter, leave_out, min_history, labels_per_user)
    cap = resolve_history(history, max_history)
    tokens, vocab = encode_items(inter, vocab, unseen)
    ratings = inter.values
    users = inter.user_idx
    ts = inter.ratings["timestamp"].to_numpy(dtype=np.int64)
    order = np.lexsort((np.arange(len(users)), ts, users))
    users, tokens, ratings = users[order], tokens[order], ratings[order]

    # the label is chosen among known items only; unseen ones (token 0) vanish first
    keep = tokens > 0
    users, tokens, ratings = users[keep], tokens[keep], ratings[keep]
    counts = np.bincount(users, minlength=inter.n_users)
    starts = np.zeros(inter.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    pos = np.arange(len(users)) - starts[users]
    newest = counts - 1 - leave_out  # per user: the newest label position
    oldest = np.maximum(newest - (labels_per_user - 1), min_history)
    per_user = np.maximum(newest - oldest + 1, 0)
    n_ex = int(per_user.sum())
    if n_ex == 0:
        raise ValueError(
            f"{inter.name}: no user has {min_history} earlier item(s) before the label "
            f"(leave_out={leave_out}); every user has too short a history"
        )
    ex_user = np.repeat(np.arange(inter.n_users), per_user)
    first_ex = np.cumsum(per_user) - per_user
    label_pos = oldest[ex_user] + np.arange(n_ex) - first_ex[ex_user]
    lo = np.zeros_like(label_pos) if cap is None else np.maximum(label_pos - cap, 0)
    hist_len = label_pos - lo
    splits = np.zeros(n_ex + 1, dtype=np.int64)
    np.cumsum(hist_len, out=splits[1:])
    # each example's history: rows starts[u] + lo .. starts[u] + label_pos - 1, in order
    at = np.repeat(starts[ex_user] + lo - splits[:-1], hist_len) + np.arange(splits[-1])
    ex_of = np.repeat(np.arange(n_ex), hist_len)
    hist_tokens, hist_ratings = tokens[at], ratings[at]

    def ragged(mask: np.ndarray) -> Ragged:
        sp = np.zeros(n_ex + 1, dtype=np.int64)
        np.cumsum(np.bincount(ex_of[mask], minlength=n_ex), out=sp[1:])
        return Ragged(hist_tokens[mask], sp)

    watched = Ragged(hist_tokens, splits)
    liked = ragged(hist_ratings >= LIKED_MIN_RATING)
    disliked = ragged(hist_ratings <= DISLIKED_MAX_RATING)

    genre_names = genre_vocabulary(inter.items)
    per_item = item_genre_tokens(inter.items, vocab, genre_names)
    n_g = per_item.lengths[hist_tokens - 1]
    g = per_item.take(hist_tokens - 1).values
    key = np.unique(np.repeat(ex_of, n_g) * (len(genre_names) + 1) + g)  # (example, genre)
    key_ex = key // (len(genre_names) + 1)
    g_splits = np.zeros(n_ex + 1, dtype=np.int64)
    np.cumsum(np.bincount(key_ex, minlength=n_ex), out=g_splits[1:])
    genre = Ragged(key % (len(genre_names) + 1), g_splits)

    # popularity for the negative sampler: every rating except the held-out ones
    visible = pos <= newest[users]
    item_counts = np.bincount(tokens[visible], minlength=len(vocab) + 1).astype(np.int64)
    item_counts[0] = 0
    return UserFeatures(
        user_ids=np.asarray(inter.user_ids)[ex_user],
        watched=watched,
        liked=liked,
        disliked=disliked,
        genre=genre,
        labels=tokens[starts[ex_user] + label_pos].astype(np.int32),
        item_ids=np.asarray(vocab),
        genre_names=genre_names,
        item_counts=item_counts,
        history=history,
        max_history=cap,
        leave_out=leave_out,
        n_users_dropped=int(np.count_nonzero(per_user == 0)),
    )


def split_last(
    inter: Interactions, *, history: str = "course", max_history: int | None = None
) -> tuple[UserFeatures, UserFeatures]:
    """Leave-last-out split: train labels are each user's second most recent item, test labels
    the most recent one (never seen by the model for that user). Same vocabularies."""
    train = build_user_features(inter, history=history, max_history=max_history, leave_out=1)
    test = build_user_features(inter, history=history, max_history=max_history, leave_out=0)
    return train, test


def split_last_valid(
    inter: Interactions,
    *,
    labels_per_user: int = 1,
    history: str = "course",
    max_history: int | None = None,
) -> tuple[UserFeatures, UserFeatures, UserFeatures]:
    """Leave-last-out with a validation label: ``(train, valid, test)``. Test labels are each
    user's most recent item, validation labels the one before it; training examples end before
    both (``labels_per_user`` label positions per user, each with its earlier history). Same
    vocabularies; a model stopped on ``valid`` has seen neither held-out item of any user."""
    opts = {"history": history, "max_history": max_history}
    train = build_user_features(inter, leave_out=2, labels_per_user=labels_per_user, **opts)
    valid = build_user_features(inter, leave_out=1, **opts)
    test = build_user_features(inter, leave_out=0, **opts)
    return train, valid, test


def record_epochs(state, history: dict, seconds: float, epochs: int) -> dict:
    """Add one ``fit`` call to a training state's totals (``seconds``, ``epochs``, ``history``)
    and return the Keras history plus ``seconds`` and ``examples_per_s`` of that call. Shared by
    the naive and the optimised training loops so both report throughput the same way."""
    state.seconds += seconds
    state.epochs += epochs
    for key, vals in history.items():
        state.history.setdefault(key, []).extend(vals)
    return {
        **history,
        "seconds": seconds,
        "examples_per_s": epochs * state.features.n_examples / seconds,
    }
