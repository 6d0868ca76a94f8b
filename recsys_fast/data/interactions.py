"""The one in-memory form of every data source.

``ratings``: DataFrame with columns ``user_id, item_id, rating, timestamp`` (original ids,
rating float32, timestamp int64; 0 where the source has none).
``items``: DataFrame indexed by ``item_id`` with columns ``title, genres, text`` (genres joined
by ``|``; text is a description/overview, "" where the source has none) and, where the source
has them, ``vote_count, vote_average``.

Compact arrays (``user_idx``/``item_idx`` int32, ``values`` float32) index into ``user_ids`` /
``item_ids``, the sorted unique original ids found in ``ratings``.

Duplicate (user, item) pairs: loaders raise :class:`~recsys_fast.errors.DataFormatError` naming
both lines (``duplicates="error"``, the default), or with ``duplicates="last"`` keep the row that
comes last in the file, exactly as the course's ``itertuples`` fill does, and report how many
were overwritten in ``Interactions.n_duplicates_overwritten``. Nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ITEM_COLUMNS = ("title", "genres", "text")


@dataclass
class Interactions:
    """Ratings plus item (and optionally user) side information for one data set."""

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    name: str = "unnamed"
    n_duplicates_overwritten: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in RATING_COLUMNS if c not in self.ratings.columns]
        if missing:
            raise ValueError(f"{self.name}: ratings lack columns {missing}")
        missing = [c for c in ITEM_COLUMNS if c not in self.items.columns]
        if missing:
            raise ValueError(f"{self.name}: items lack columns {missing}")

    # -- compact index form -------------------------------------------------------------
    @cached_property
    def _codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u_codes, u_ids = pd.factorize(self.ratings["user_id"], sort=True)
        i_codes, i_ids = pd.factorize(self.ratings["item_id"], sort=True)
        return (
            u_codes.astype(np.int32),
            i_codes.astype(np.int32),
            np.asarray(u_ids),
            np.asarray(i_ids),
        )

    @property
    def user_idx(self) -> np.ndarray:
        return self._codes[0]

    @property
    def item_idx(self) -> np.ndarray:
        return self._codes[1]

    @property
    def user_ids(self) -> np.ndarray:
        """Original user ids; ``user_ids[user_idx[k]]`` is the user of rating ``k``."""
        return self._codes[2]

    @property
    def item_ids(self) -> np.ndarray:
        return self._codes[3]

    @cached_property
    def values(self) -> np.ndarray:
        return self.ratings["rating"].to_numpy(dtype=np.float32)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def density(self) -> float:
        return self.n_ratings / max(1, self.n_users * self.n_items)

    def work(self) -> dict:
        """What the data's laws cost the similarity kernels: the multiply-adds of the item-item
        product ``X X^T`` (X items x users: each user's d ratings give d^2 pairs), of the
        user-user one, and the share of ratings on the 1 % most rated items."""
        u = np.bincount(self.user_idx, minlength=self.n_users).astype(np.float64)
        i = np.bincount(self.item_idx, minlength=self.n_items).astype(np.float64)
        top = np.sort(i)[::-1][: max(1, -(-self.n_items // 100))]
        return {"pair_madds_item_item": float((u * u).sum()),
                "pair_madds_user_user": float((i * i).sum()),
                "top1pct_item_share": float(top.sum() / max(1.0, i.sum()))}

    def laws(self) -> dict:
        """The laws the ratings show, in the generator's terms: the slope of log(count) against
        log(rank) over the body of the item popularity curve (ranks from the top 1 % to the
        median rated item), the standard deviation of log(ratings per user), the fewest ratings
        per user and the most as a share of the items."""
        items = np.bincount(self.item_idx, minlength=self.n_items).astype(np.float64)
        users = np.bincount(self.user_idx, minlength=self.n_users).astype(np.float64)
        counts = np.sort(items[items > 0])[::-1]
        ranks = np.arange(1, counts.size + 1)
        lo, hi = max(1, counts.size // 100), max(10, counts.size // 2)
        slope = np.polyfit(np.log(ranks[lo:hi]), np.log(counts[lo:hi]), 1)[0]
        active = users[users > 0]
        return {"popularity_exponent": float(-slope),
                "activity_sigma": float(np.std(np.log(active))),
                "min_per_user": int(active.min()),
                "max_user_share": float(users.max() / self.n_items)}

    def summary(self) -> dict:
        """Counts, density and the rating histogram (value -> count)."""
        hist = self.ratings["rating"].value_counts().sort_index()
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "items_in_catalogue": len(self.items),
            "ratings": self.n_ratings,
            "density": self.density,
            "rating_histogram": {float(k): int(v) for k, v in hist.items()},
        }


def make_ratings_frame(user_id, item_id, rating, timestamp=None) -> pd.DataFrame:
    """Build a ratings frame with the canonical columns and dtypes."""
    n = len(user_id)
    ts = np.zeros(n, dtype=np.int64) if timestamp is None else np.asarray(timestamp, np.int64)
    return pd.DataFrame(
        {
            "user_id": np.asarray(user_id, dtype=np.int64),
            "item_id": np.asarray(item_id, dtype=np.int64),
            "rating": np.asarray(rating, dtype=np.float32),
            "timestamp": ts,
        }
    )


def make_items_frame(item_id, title=None, genres=None, text=None, **extra) -> pd.DataFrame:
    """Build an items frame indexed by ``item_id`` with the canonical columns."""
    n = len(item_id)
    blank = [""] * n
    df = pd.DataFrame(
        {
            "title": blank if title is None else list(title),
            "genres": blank if genres is None else list(genres),
            "text": blank if text is None else list(text),
            **{k: np.asarray(v) for k, v in extra.items()},
        },
        index=pd.Index(np.asarray(item_id), name="item_id"),
    )
    return df
