"""Surprise's published ML-100K figures, and our measurement of them by Surprise's own procedure.

Surprise's README benchmark table (produced by its ``examples/benchmark.py``) gives, for
MovieLens 100K, the mean over 5 folds of ``cross_validate(algo, data, ["rmse", "mae"], kf)``
with ``kf = KFold(random_state=0)`` (5 random folds of ``u.data``), default parameters
(``sim_options``: msd, user-based; k=40, min_k=1) and Surprise's clipped predictions:
``KNNBasic`` RMSE 0.980, MAE 0.774; ``KNNWithMeans`` RMSE 0.951, MAE 0.749.

:func:`surprise_published_rows` re-runs exactly that procedure on ``u.data``. The protocol's
own ``u1-u5`` rows for ``surprise-knnbasic-user-k40-msd`` / ``surprise-knnwithmeans-user-k40-msd``
use the same models on ML-100K's predefined folds instead, unclipped: the report shows all three.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

PUBLISHED = {
    "surprise-knnbasic-user-k40-msd": ("KNNBasic", 0.980, 0.774),
    "surprise-knnwithmeans-user-k40-msd": ("KNNWithMeans", 0.951, 0.749),
}
#: published single-fold figures on ML-100K's own folds: (model, split) -> (RMSE, source)
FOLD_FIGURES = {
    ("surprise-knnbasic-user-k40-msd", "u1"): (
        0.9889, "Surprise examples/notebooks/KNNBasic_analysis.ipynb: KNNBasic() on "
                "u1.base/u1.test, algo.test (clipped)"),
}
SOURCE = ("Surprise README, 'Benchmarks' table, Movielens 100k "
          "(examples/benchmark.py: cross_validate with KFold(random_state=0), default settings)")
PROCEDURE = ("Surprise's own: Dataset.load_from_file(u.data, Reader('ml-100k')), "
             "cross_validate(algo(), data, ['rmse', 'mae'], KFold(n_splits=5, random_state=0)); "
             "clipped predictions")


def surprise_published_rows(ml100k_dir: str | Path, log=None) -> list[dict]:
    """One ``published`` row per model of :data:`PUBLISHED`: our measurement by Surprise's
    procedure beside the published figure."""
    import surprise
    from surprise.model_selection import KFold, cross_validate

    rows = []
    path = Path(ml100k_dir) / "u.data"
    for model, (algo, pub_rmse, pub_mae) in PUBLISHED.items():
        np.random.seed(0)  # noqa: NPY002  (Surprise draws from numpy's global RNG; as benchmark.py)
        random.seed(0)
        data = surprise.Dataset.load_from_file(str(path), reader=surprise.Reader("ml-100k"))
        t0 = time.perf_counter()
        out = cross_validate(getattr(surprise, algo)(verbose=False), data, ["rmse", "mae"],
                             KFold(n_splits=5, random_state=0))
        row = {"task": "published", "dataset": "ml-100k", "split": "KFold(5, random_state=0)",
               "model": model, "status": "ok", "version": surprise.__version__,
               "rmse": float(np.mean(out["test_rmse"])), "mae": float(np.mean(out["test_mae"])),
               "rmse_folds": [float(x) for x in out["test_rmse"]],
               "published_rmse": pub_rmse, "published_mae": pub_mae,
               "source": SOURCE, "procedure": PROCEDURE,
               "note": f"Surprise {algo}() defaults: msd, user-based, k=40, min_k=1",
               "fit_s": float(np.sum(out["fit_time"])),
               "predict_s": float(np.sum(out["test_time"])),
               "wall_s": time.perf_counter() - t0}
        rows.append(row)
        if log:
            log(f"[ml-100k published procedure] {model}: RMSE {row['rmse']:.4f} "
                f"(published {pub_rmse}), MAE {row['mae']:.4f} (published {pub_mae})")
    return rows
