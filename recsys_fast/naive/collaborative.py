"""Naive reference: the course's memory-based collaborative filtering on MovieLens 100K.

Kept as the course wrote it, quirks included: a dense ``np.zeros`` user-item matrix filled by
``itertuples``; ``pairwise_distances(..., metric='cosine')`` whose cosine *distances* are then
used as the similarity weights; the user mean taken over all items (zeros included); RMSE over
the test matrix's non-zeros. The optimised kernels reproduce exactly this in their course mode.

Forced or deliberate changes from the course:

* the matrix is sized by the largest ids (``max user_id x max item_id``) instead of the count of
  unique ids, so sparse or gapped ids cannot index past the end (identical on ML-100K);
* ids < 1 raise (the course's ``id - 1`` would wrap id 0 to the last row without a word);
* every dense allocation is checked first with :func:`recsys_fast.memory.check_memory`, which
  raises :class:`~recsys_fast.errors.MemoryBudgetError` instead of letting the OS kill us;
* ``predict`` with an unknown ``type`` raises ``ValueError`` (the course hit UnboundLocalError).
"""

from __future__ import annotations

from math import sqrt

import numpy as np
import pandas as pd
from sklearn.metrics import mean_squared_error, pairwise_distances

from recsys_fast.data.interactions import Interactions
from recsys_fast.memory import check_memory, dense_bytes

_F64 = np.dtype(np.float64).itemsize


def _max_id_shape(*frames: pd.DataFrame) -> tuple[int, int]:
    return (
        int(max(f["user_id"].max() for f in frames)),
        int(max(f["item_id"].max() for f in frames)),
    )


def _check_ratings(ratings: pd.DataFrame) -> None:
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in ("user_id", "item_id", "rating") if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings lack columns {missing} (has {list(ratings.columns)})")
    if len(ratings) == 0:
        raise ValueError("ratings is empty: nothing to put in the user-item matrix")
    for col in ("user_id", "item_id"):
        if not pd.api.types.is_integer_dtype(ratings[col]):
            raise TypeError(f"ratings[{col!r}] must hold integers, got dtype {ratings[col].dtype}")
        low = ratings[col] < 1
        if low.any():
            row, value = ratings.index[low][0], ratings[col][low].iloc[0]
            raise ValueError(
                f"ratings[{col!r}] must be >= 1 (ids are 1-based), got {value} at row {row!r}"
            )
    nan = ratings["rating"].isna()
    if nan.any():
        raise ValueError(f"NaN rating at row {ratings.index[nan][0]!r}")


def build_data_matrix(ratings: pd.DataFrame, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Dense user x item matrix filled row by row with ``itertuples``, as in the course.

    Parameters
    ----------
    ratings : DataFrame
        Columns ``user_id``, ``item_id`` (1-based integer ids) and ``rating``.
    shape : (int, int), optional
        Matrix shape; default ``(max user_id, max item_id)``. Give it when a train and a test
        matrix must share a shape.

    Returns
    -------
    ndarray of float64
        ``m[user_id - 1, item_id - 1] = rating``; zeros elsewhere. A repeated (user, item) pair
        keeps the rating that comes last, like the course's loop.

    Raises
    ------
    ValueError
        Missing columns, empty frame, ids < 1 or beyond ``shape``, NaN ratings.
    MemoryBudgetError
        The dense matrix would not fit in the memory budget.
    """
    _check_ratings(ratings)
    if shape is None:
        shape = _max_id_shape(ratings)
    else:
        shape = (int(shape[0]), int(shape[1]))
        for col, size in zip(("user_id", "item_id"), shape, strict=True):
            over = ratings[col] > size
            if over.any():
                row, value = ratings.index[over][0], ratings[col][over].iloc[0]
                raise ValueError(
                    f"ratings[{col!r}] = {value} at row {row!r} does not fit shape {shape}"
                )
    check_memory(f"dense user-item matrix {shape[0]} x {shape[1]} float64", dense_bytes(shape))
    data_matrix = np.zeros(shape)
    # The course's loop; columns selected first so line[1..3] are user, item, rating whatever
    # order the caller's frame has.
    for line in ratings[["user_id", "item_id", "rating"]].itertuples():
        data_matrix[line[1] - 1, line[2] - 1] = line[3]
    return data_matrix


def _check_matrix(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    return a


def user_item_similarity(data_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """User-user and item-item cosine *distances*, which the course uses as similarities.

    Parameters
    ----------
    data_matrix : ndarray, shape (n_users, n_items)

    Returns
    -------
    user_similarity : ndarray, shape (n_users, n_users)
        ``pairwise_distances(data_matrix, metric='cosine')``.
    item_similarity : ndarray, shape (n_items, n_items)
        ``pairwise_distances(data_matrix.T, metric='cosine')``.

    Raises
    ------
    MemoryBudgetError
        The two dense outputs (plus sklearn's normalised copy of the input) would not fit.
    """
    data_matrix = _check_matrix("data_matrix", data_matrix)
    n_users, n_items = data_matrix.shape
    # sklearn normalises a float64 copy of the input, then writes the n x n result.
    work = 2 * dense_bytes(data_matrix.shape)
    check_memory(
        f"user-user ({n_users} x {n_users}) and item-item ({n_items} x {n_items}) "
        "cosine distances, float64",
        dense_bytes((n_users, n_users)) + dense_bytes((n_items, n_items)) + work,
    )
    user_similarity = pairwise_distances(data_matrix, metric="cosine")
    item_similarity = pairwise_distances(data_matrix.T, metric="cosine")
    return user_similarity, item_similarity


def predict(ratings: np.ndarray, similarity: np.ndarray, type: str = "user") -> np.ndarray:
    """The course's memory-based CF prediction (``type`` keeps the course's argument name).

    user: ``mean + similarity.dot(ratings - mean) / sum|similarity|`` with the mean of each
    user's row over all items, zeros included. item: ``ratings.dot(similarity) / sum|similarity|``.

    Parameters
    ----------
    ratings : ndarray, shape (n_users, n_items)
    similarity : ndarray
        ``(n_users, n_users)`` for ``type='user'``, ``(n_items, n_items)`` for ``type='item'``.
    type : {'user', 'item'}

    Returns
    -------
    ndarray, shape (n_users, n_items)

    Raises
    ------
    ValueError
        Unknown ``type`` or shapes that do not match.
    MemoryBudgetError
        The dense temporaries (diff, product, quotient, result) would not fit.
    """
    ratings = _check_matrix("ratings", ratings)
    similarity = _check_matrix("similarity", similarity)
    if type not in ("user", "item"):
        raise ValueError(f"type must be 'user' or 'item', got {type!r}")
    n = ratings.shape[0] if type == "user" else ratings.shape[1]
    if similarity.shape != (n, n):
        raise ValueError(
            f"{type}-based prediction needs a {n} x {n} similarity for ratings of shape "
            f"{ratings.shape}, got {similarity.shape}"
        )
    temporaries = 4 if type == "user" else 2
    check_memory(
        f"{type}-based prediction {ratings.shape[0]} x {ratings.shape[1]} float64 "
        f"({temporaries} dense temporaries)",
        temporaries * dense_bytes(ratings.shape),
    )
    if type == "user":
        mean_user_rating = ratings.mean(axis=1)
        # np.newaxis so that mean_user_rating has the same format as ratings
        ratings_diff = ratings - mean_user_rating[:, np.newaxis]
        pred = (
            mean_user_rating[:, np.newaxis]
            + similarity.dot(ratings_diff) / np.array([np.abs(similarity).sum(axis=1)]).T
        )
    else:
        pred = ratings.dot(similarity) / np.array([np.abs(similarity).sum(axis=1)])
    return pred


def rmse(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Root mean squared error over the non-zero entries of ``ground_truth`` (the course's).

    Raises
    ------
    ValueError
        Shapes differ, or ``ground_truth`` has no non-zero entry.
    """
    prediction = np.asarray(prediction)
    ground_truth = np.asarray(ground_truth)
    if prediction.shape != ground_truth.shape:
        raise ValueError(
            f"prediction shape {prediction.shape} != ground_truth shape {ground_truth.shape}"
        )
    if not np.any(ground_truth):
        raise ValueError("ground_truth has no non-zero entry: RMSE is undefined")
    prediction = prediction[ground_truth.nonzero()].flatten()
    ground_truth = ground_truth[ground_truth.nonzero()].flatten()
    return sqrt(mean_squared_error(prediction, ground_truth))


def run_course_cf(train: Interactions | pd.DataFrame, test: Interactions | pd.DataFrame) -> dict:
    """The course's whole CF run: matrices, similarities, both predictions, both RMSEs.

    Parameters
    ----------
    train, test : Interactions or DataFrame
        Ratings with 1-based ``user_id``/``item_id`` (e.g. ML-100K ``ua.base`` / ``ua.test``).
        Both matrices get the shape ``(max user_id, max item_id)`` over train and test.

    Returns
    -------
    dict
        ``user_rmse``, ``item_rmse`` (floats) and ``shape`` (n_users, n_items).
    """
    frames = []
    for name, obj in (("train", train), ("test", test)):
        frame = obj.ratings if isinstance(obj, Interactions) else obj
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be Interactions or a DataFrame, got {type(obj).__name__}")
        _check_ratings(frame)
        frames.append(frame)
    shape = _max_id_shape(*frames)
    train_data_matrix = build_data_matrix(frames[0], shape)
    test_data_matrix = build_data_matrix(frames[1], shape)
    user_similarity, item_similarity = user_item_similarity(train_data_matrix)
    item_prediction = predict(train_data_matrix, item_similarity, type="item")
    user_prediction = predict(train_data_matrix, user_similarity, type="user")
    return {
        "user_rmse": rmse(user_prediction, test_data_matrix),
        "item_rmse": rmse(item_prediction, test_data_matrix),
        "shape": shape,
    }
