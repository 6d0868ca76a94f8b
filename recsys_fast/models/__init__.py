"""Rating predictors and top-N recommenders, ours and the peers', behind two interfaces.

:func:`all_models` lists one fresh instance of every model the quality protocol
(:mod:`recsys_fast.quality`) evaluates, ours first; :func:`select` picks some by name.
Importing this package imports no optional library: each model imports its own in ``fit``.
"""

from __future__ import annotations

from recsys_fast.models.base import Model, RatingPredictor, Recommender, TopN
from recsys_fast.models.baselines import MostPopular, RandomRanker
from recsys_fast.models.implicit_knn import ImplicitItemKNN
from recsys_fast.models.lenskit_knn import LensKitItemKNN
from recsys_fast.models.ours import (
    CourseCF,
    FixedCFModel,
    ItemKNNModel,
    TunedKNN,
    UserKNNModel,
)
from recsys_fast.models.surprise_knn import SurpriseKNN

__all__ = [
    "CourseCF",
    "FixedCFModel",
    "ImplicitItemKNN",
    "ItemKNNModel",
    "LensKitItemKNN",
    "Model",
    "MostPopular",
    "RandomRanker",
    "RatingPredictor",
    "Recommender",
    "SurpriseKNN",
    "TopN",
    "TunedKNN",
    "UserKNNModel",
    "all_models",
    "select",
]


def all_models() -> list[Model]:
    """Every model of the protocol, ours first, then the peers, then the baselines (fresh,
    unfitted)."""
    models: list[Model] = [CourseCF("user"), CourseCF("item")]
    for k in (50, 40):
        models += [FixedCFModel("user", k), FixedCFModel("item", k)]
    for algo in ("basic", "means"):
        for kind in ("user", "item"):
            for k in (40, None):
                models.append(SurpriseKNN(algo, kind, k, "cosine"))
    # Surprise's published ML-100K settings: defaults (msd, k=40, user-based)
    models += [SurpriseKNN("basic", "user", 40, "msd"), SurpriseKNN("means", "user", 40, "msd")]
    models += [ItemKNNModel(50, "cosine"), ItemKNNModel(50, "bm25"), UserKNNModel(50),
               TunedKNN()]
    models += [ImplicitItemKNN(kind, 50) for kind in ("cosine", "tfidf", "bm25", "itemitem")]
    models += [LensKitItemKNN(20), MostPopular(), RandomRanker(0)]
    return models


def select(names: str | None) -> list[Model]:
    """The models named in a comma list (all when ``names`` is empty or None).

    Raises
    ------
    ValueError
        A name no model has (the valid names are listed).
    """
    models = all_models()
    if not names:
        return models
    by_name = {m.name: m for m in models}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown models {unknown}; valid: {', '.join(by_name)}")
    return [by_name[n] for n in dict.fromkeys(wanted)]
