"""Train/test splits of a ratings frame, and the train matrix on internal indices.

* ML-100K: its own files, ``ua``/``ub`` (10 ratings per user in test) and ``u1``..``u5``
  (5 disjoint 20 % folds), through :func:`recsys_fast.data.load_ml100k_split`.
* :func:`random_split`: a seeded random ``test_fraction`` of the ratings (ml-latest-small:
  20 %, seed 0; ``numpy.random.default_rng(seed).permutation``).
* :func:`leave_last_out`: per user with at least 2 ratings, the latest rating is the test
  item; the rest is train. Tie rule: among a user's ratings with the latest timestamp, the one
  a seeded shuffle puts last (``numpy.random.default_rng(seed).permutation`` of the rows, seed
  0): many ML-100K users rated several films in the same second, and file order or item id
  would favour old or new ids. Users with one rating stay in train and are not evaluated.
* :func:`temporal_split`: one global cut in time: the ratings after the ``1 - test_fraction``
  quantile of the timestamps are test (ties at the cut go to train), the rest train. Test
  users absent from train are counted, not evaluated.
* :func:`cold_user_split`: a seeded random ``test_fraction`` of the users with more than
  ``keep`` ratings become cold: their ``keep`` earliest ratings stay in train, the rest are
  test; every other user keeps all ratings in train. Tie rule: ratings with equal timestamps
  are ordered by a seeded shuffle of the rows (``numpy.random.default_rng(seed)``, drawn
  after the cold users), as :func:`leave_last_out` does, and the shuffle's first ones are kept.

:func:`encode` indexes users and items *as they appear in train*; a test pair whose user or
item has no train rating gets index -1 (the protocol predicts the global mean there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse

COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclass
class Encoded:
    """``train`` (CSR float32, train users x train items) and the test pairs on its indices."""

    train: scipy.sparse.csr_matrix
    test_users: np.ndarray  # int64, -1 = user unknown in train
    test_items: np.ndarray  # int64, -1 = item unknown in train
    test_ratings: np.ndarray  # float64
    user_ids: np.ndarray  # original id of each train row
    item_ids: np.ndarray  # original id of each train column

    @property
    def known(self) -> np.ndarray:
        return (self.test_users >= 0) & (self.test_items >= 0)


def _check_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a ratings DataFrame, got {type(frame).__name__}")
    lack = [c for c in COLUMNS if c not in frame.columns]
    if lack:
        raise ValueError(f"{what} lacks columns {lack} (has {list(frame.columns)})")
    if len(frame) == 0:
        raise ValueError(f"{what} is empty")
    return frame


def random_split(ratings: pd.DataFrame, test_fraction: float = 0.2,
                 seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random ``test_fraction`` of the rows as test, the rest as train."""
    _check_frame(ratings, "ratings")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(ratings))
    n_test = int(round(test_fraction * len(ratings)))
    test = ratings.iloc[np.sort(order[:n_test])].reset_index(drop=True)
    train = ratings.iloc[np.sort(order[n_test:])].reset_index(drop=True)
    return train, test


def _by_time(ratings: pd.DataFrame, tie: np.ndarray) -> pd.DataFrame:
    """``ratings`` ordered by user, then timestamp, equal timestamps by ``tie`` (a seeded
    permutation of the rows): the tie rule of the per-user splits."""
    ordered = ratings.assign(_tie=tie).sort_values(["user_id", "timestamp", "_tie"],
                                                   kind="stable")
    return ordered.drop(columns="_tie")


def leave_last_out(ratings: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest rating (equal timestamps: the seeded shuffle's last) as test; users
    with one rating keep it in train."""
    _check_frame(ratings, "ratings")
    ordered = _by_time(ratings, np.random.default_rng(seed).permutation(len(ratings)))
    last = ~ordered["user_id"].duplicated(keep="last")
    counts = ordered.groupby("user_id")["user_id"].transform("size")
    is_test = last & (counts >= 2)
    return (ordered[~is_test].reset_index(drop=True), ordered[is_test].reset_index(drop=True))


def cold_user_split(ratings: pd.DataFrame, keep: int, test_fraction: float = 0.2,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cold-start users: ``round(test_fraction * n)`` of the ``n`` users with more than
    ``keep`` ratings (at least one) are drawn by ``numpy.random.default_rng(seed)``
    (``permutation`` of those user ids in ascending order, the first ones); each keeps only
    their ``keep`` earliest ratings in train, the rest of theirs is test. Every other user
    keeps all ratings in train.

    Tie rule: ratings are ordered by timestamp, equal timestamps by a seeded shuffle of the
    rows (the same generator's next ``permutation(len(ratings))``), so the user draw does not
    depend on the shuffle and, for the same eligible users, every ``keep`` gets the same cold
    users. Both frames come sorted by user, timestamp and that shuffle.

    Raises
    ------
    TypeError
        ``keep`` is not an integer, or ``ratings`` not a DataFrame.
    ValueError
        ``keep`` < 1, ``test_fraction`` outside (0, 1], empty data, missing columns, or no
        user with more than ``keep`` ratings.
    """
    _check_frame(ratings, "ratings")
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)):
        raise TypeError(f"keep must be an integer, got {keep!r}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (ratings a cold user keeps in train), got {keep}")
    if not 0 < test_fraction <= 1:
        raise ValueError(f"test_fraction must be in (0, 1], got {test_fraction!r}")
    counts = ratings.groupby("user_id").size()
    eligible = np.sort(counts.index[counts.to_numpy() > keep].to_numpy())
    if eligible.size == 0:
        raise ValueError(f"no user has more than keep={keep} ratings: no one can be cold")
    rng = np.random.default_rng(seed)
    n_cold = max(1, int(round(test_fraction * eligible.size)))
    cold = eligible[rng.permutation(eligible.size)[:n_cold]]
    ordered = _by_time(ratings, rng.permutation(len(ratings)))
    rank = ordered.groupby("user_id").cumcount().to_numpy()
    is_test = ordered["user_id"].isin(cold).to_numpy() & (rank >= keep)
    return (ordered[~is_test].reset_index(drop=True), ordered[is_test].reset_index(drop=True))


def temporal_split(ratings: pd.DataFrame,
                   test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ratings after the ``1 - test_fraction`` quantile of the timestamps as test."""
    _check_frame(ratings, "ratings")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    cut = np.quantile(ratings["timestamp"].to_numpy(), 1.0 - test_fraction, method="lower")
    late = ratings["timestamp"].to_numpy() > cut
    if not late.any() or late.all():
        raise ValueError(f"every timestamp is on one side of the cut {cut}: no temporal split")
    return (ratings[~late].reset_index(drop=True), ratings[late].reset_index(drop=True))


def encode(train: pd.DataFrame, test: pd.DataFrame) -> Encoded:
    """The train CSR on train's own users/items and the test pairs on those indices."""
    _check_frame(train, "train")
    _check_frame(test, "test")
    u_codes, user_ids = pd.factorize(train["user_id"], sort=True)
    i_codes, item_ids = pd.factorize(train["item_id"], sort=True)
    R = scipy.sparse.csr_matrix(
        (train["rating"].to_numpy(np.float32), (u_codes, i_codes)),
        shape=(len(user_ids), len(item_ids)),
    )
    if R.nnz != len(train):
        raise ValueError(f"train holds {len(train) - R.nnz} duplicate (user, item) pairs")
    return Encoded(
        train=R,
        test_users=pd.Index(user_ids).get_indexer(test["user_id"]).astype(np.int64),
        test_items=pd.Index(item_ids).get_indexer(test["item_id"]).astype(np.int64),
        test_ratings=test["rating"].to_numpy(np.float64),
        user_ids=np.asarray(user_ids),
        item_ids=np.asarray(item_ids),
    )
