"""Optimised kernels computing the same functions as the naive course references.

A flat list of re-exports: CSR build and cosine kernels; CF prediction, item-kNN ranking,
weighted rating, TF-IDF top-k and hybrids.
"""

from recsys_fast.kernels.hybrid import MixedHybrid, Recommendations, SwitchingHybrid
from recsys_fast.kernels.interactions import build_user_item_csr
from recsys_fast.kernels.knn_rank import ItemKNN, UserKNN
from recsys_fast.kernels.popularity import (
    WeightedRating,
    item_popularity,
    weighted_rating,
    weighted_rating_chart,
)
from recsys_fast.kernels.predict import (
    FixedCF,
    as_train_csr,
    evaluate_rmse_ua,
    predict_course,
    rmse,
)
from recsys_fast.kernels.similarity import (
    TopKResult,
    cosine_distances,
    cosine_topk,
    cosine_topk_result,
    dot_topk,
    warmup,
)
from recsys_fast.kernels.tfidf import TfidfNeighbours, tfidf_topk

# Task drivers register their implementations of the kernels above (drivers.register).
from recsys_fast.kernels import distributed as _dask_driver  # noqa: E402, F401  isort: skip

__all__ = [
    "FixedCF",
    "ItemKNN",
    "MixedHybrid",
    "Recommendations",
    "SwitchingHybrid",
    "TfidfNeighbours",
    "TopKResult",
    "UserKNN",
    "WeightedRating",
    "as_train_csr",
    "build_user_item_csr",
    "cosine_distances",
    "cosine_topk",
    "cosine_topk_result",
    "dot_topk",
    "evaluate_rmse_ua",
    "item_popularity",
    "predict_course",
    "rmse",
    "tfidf_topk",
    "warmup",
    "weighted_rating",
    "weighted_rating_chart",
]
