"""Inputs shared by several case modules, built once per scale through ``ctx.memo``.

Matrices are indexed by ``id - 1`` and shaped ``(max user_id, max item_id)``, as the course's
dense matrix (``naive.collaborative.build_data_matrix``), so naive and optimised results line up
entry by entry. The CSR inputs of the optimised kernels are built with scipy (``coo -> csr``;
the data sets have no duplicate pairs), not with the kernel under test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily below: registering cases must stay cheap
    import pandas as pd
    import scipy.sparse

F64 = 8
F32 = 4


def ratings(ctx, scale: str) -> pd.DataFrame:
    return ctx.interactions(scale).ratings


def id_shape(ctx, scale: str) -> tuple[int, int]:
    r = ratings(ctx, scale)
    return int(r["user_id"].max()), int(r["item_id"].max())


def train_csr(ctx, scale: str, dtype=np.float64) -> scipy.sparse.csr_matrix:
    """Users x items CSR of the scale's ratings (rows = user_id - 1, columns = item_id - 1)."""

    def build():
        import scipy.sparse

        r = ratings(ctx, scale)
        rows = r["user_id"].to_numpy(np.int64) - 1
        cols = r["item_id"].to_numpy(np.int64) - 1
        vals = r["rating"].to_numpy(dtype)
        return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=id_shape(ctx, scale))

    return ctx.memo((scale, "train_csr", np.dtype(dtype).name), build)


def item_user_csr(ctx, scale: str, dtype=np.float32) -> scipy.sparse.csr_matrix:
    """Items x users CSR (the rows item-item similarity works on)."""
    return ctx.memo((scale, "item_user_csr", np.dtype(dtype).name),
                    lambda: train_csr(ctx, scale, dtype).T.tocsr())


def dense_matrix(ctx, scale: str) -> np.ndarray:
    """The course's dense float64 user x item matrix (naive ``build_data_matrix``)."""
    from recsys_fast.naive.collaborative import build_data_matrix

    return ctx.memo((scale, "dense_matrix"),
                    lambda: build_data_matrix(ratings(ctx, scale), shape=id_shape(ctx, scale)))


def documents(ctx, scale: str) -> pd.DataFrame:
    """``id, description`` frame (the retail ``sample-data.csv`` schema) of the scale's synthetic
    items: one document per item, so the corpus grows with the scale (1,682 ... 59,047)."""

    def build():
        import pandas as pd

        from recsys_fast.data.synthetic import generate

        inter = ctx.interactions(scale)
        if not (inter.items["text"].str.len() > 0).all():  # real ML-100K has no descriptions
            inter = generate(scale, seed=ctx.seed)
        return pd.DataFrame({"id": inter.items.index.to_numpy(),
                             "description": inter.items["text"].to_numpy()})

    return ctx.memo((scale, "documents"), build)


def vote_metadata(ctx, scale: str) -> pd.DataFrame:
    """``title, vote_count, vote_average`` per item (from the items table, or the ratings)."""

    def build():
        import pandas as pd

        inter = ctx.interactions(scale)
        items = inter.items
        if {"vote_count", "vote_average"} <= set(items.columns):
            return items[["title", "vote_count", "vote_average"]].copy()
        g = inter.ratings.groupby("item_id")["rating"]
        stats = pd.DataFrame({"vote_count": g.size(), "vote_average": g.mean().astype(float)})
        return items[["title"]].join(stats, how="inner")

    return ctx.memo((scale, "vote_metadata"), build)


def threads() -> int:
    """CPU threads this process may use (what the peers are given, as ours uses them all)."""
    from recsys_fast.memory import available_cores

    return available_cores()


def to_backend(x, backend: str):
    from recsys_fast.backend import get_backend

    return get_backend(backend).to_device(x)


def sync(backend: str) -> None:
    from recsys_fast.backend import get_backend

    get_backend(backend).sync()
