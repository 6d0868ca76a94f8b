"""Implementations of neighbourhood rating prediction: fit on the scale's ratings minus a
held-out sample, then predict the held-out pairs (both timed: what a user of Surprise times).

``knn_predict``: optimised = ``FixedCF("item", k=40)`` (``recsys_fast.models.FixedCFModel``:
cosine on whole rating vectors, the 40 most similar items, item means over rated entries);
peers: scikit-surprise ``KNNWithMeans`` and ``KNNBasic`` (item-based, cosine, k=40), whose
cosine is taken over *common* users and whose neighbours are chosen per prediction among the
items the user rated. They compute different functions (``recsys_fast/models/surprise_knn.py``
says how), so there is no equality verdict: each case records its RMSE and MAE on the held-out
pairs beside its time, and the check verifies that every pair got a finite prediction. The
held-out sample: 10,000 rated entries (seeded; a tenth of them at the tiny scale) removed from
the training matrix, never a user's last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import SCALES, Verdict

KERNEL = "knn_predict"
K = 40
N_TEST = 10_000
SEED = 0


@dataclass
class SplitState:
    scale: str
    train: Any  # users x items float32 CSR without the held-out entries
    users: np.ndarray
    items: np.ndarray
    truth: np.ndarray  # the held-out ratings


def held_out(ctx, scale: str):
    """``(train, users, items, truth)``: ``N_TEST`` seeded rated entries (at most a tenth of
    them) removed from the scale's matrix; each user's first entry always stays."""

    def build():
        R = casedata.train_csr(ctx, scale, np.float32).tocsr()
        rng = np.random.default_rng(SEED)
        rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
        eligible = np.setdiff1d(np.arange(R.nnz), R.indptr[:-1])  # not a row's first entry
        size = min(N_TEST, R.nnz // 10, eligible.size)
        pick = np.sort(rng.choice(eligible, size=size, replace=False))
        keep = np.ones(R.nnz, dtype=bool)
        keep[pick] = False
        train = R.copy()
        train.data = np.where(keep, train.data, 0).astype(np.float32)
        train.eliminate_zeros()
        return train, rows[pick], R.indices[pick].astype(np.int64), R.data[pick].astype(np.float64)

    return ctx.memo((scale, "held_out", N_TEST, SEED), build)


class RatingPredictImpl(Adapter):
    """Fit a rating predictor, predict the held-out pairs (see the module docstring)."""

    kernel = KERNEL
    same_function = False
    description = f"item-based k-NN (k={K}) rating prediction: fit + {N_TEST:,} held-out pairs"

    def model(self):
        raise NotImplementedError

    def setup(self, ctx, scale: str) -> SplitState:
        return SplitState(scale, *held_out(ctx, scale))

    def run(self, st: SplitState):
        return self.model().fit(st.train).predict(st.users, st.items)

    def check(self, ctx, st: SplitState, result) -> Verdict:
        pred = np.asarray(result, dtype=np.float64)
        against = "different functions: compared on RMSE/MAE of the held-out pairs (extra)"
        if pred.shape != st.truth.shape or not np.isfinite(pred).all():
            return Verdict(f"mismatch: {np.size(pred)} predictions, "
                           f"{int((~np.isfinite(pred)).sum())} not finite", against)
        return Verdict("n/a", against)

    def extra(self, st: SplitState, result) -> dict:
        err = np.asarray(result, dtype=np.float64) - st.truth
        return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
                "held_out_pairs": int(st.truth.size), "k": K}

    def examples(self, st: SplitState) -> float:
        return float(st.truth.size)

    def memory_estimate(self, spec) -> int:
        return spec.n_ratings * 60 + spec.n_items * K * 24 + (256 << 20)


class OptimisedRatingPredict(RatingPredictImpl):
    name = role = "optimised"
    note = f"FixedCF('item', k={K}).fit + predict"

    def model(self):
        from recsys_fast.models import FixedCFModel

        return FixedCFModel("item", K)


class _SurpriseRatingPredict(RatingPredictImpl):
    requires = ("surprise",)
    scales = tuple(s for s in SCALES if s != "25m")  # its dense items x items arrays: 84 GB
    algo = ""

    def model(self):
        from recsys_fast.models import SurpriseKNN

        return SurpriseKNN(self.algo, "item", K, "cosine")

    def memory_estimate(self, spec) -> int:
        # five dense items x items float64 arrays, and about 200 B per rating in its trainset
        return 5 * 8 * spec.n_items**2 + 200 * spec.n_ratings


class SurpriseWithMeans(_SurpriseRatingPredict):
    name = "surprise_knnwithmeans"
    algo = "means"
    note = f"Surprise KNNWithMeans(k={K}, cosine, item-based).fit + predict per pair"


class SurpriseBasic(_SurpriseRatingPredict):
    name = "surprise_knnbasic"
    algo = "basic"
    note = f"Surprise KNNBasic(k={K}, cosine, item-based).fit + predict per pair"


FAMILIES = (RatingPredictImpl,)
