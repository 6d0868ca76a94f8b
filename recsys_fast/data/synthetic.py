"""Deterministic synthetic rating data shaped like MovieLens, at any scale.

``generate("25m")`` gives 162,541 users x 59,047 items x 25,000,095 ratings with the same
schema as the real loaders (:class:`~recsys_fast.data.interactions.Interactions`):

* item popularity follows a power law (Zipf weights on a random ranking of the items);
* user activity is heavy-tailed (lognormal), every user has at least ``min_per_user`` ratings;
* each user's items are a weighted sample *without replacement* (successive sampling), so the
  ``n_ratings`` (user, item) pairs are all distinct;
* ratings 1..5 come from user bias + item bias + noise, cut at thresholds that reproduce the
  ML-100K histogram (mean about 3.5, 4 the most common);
* timestamps increase strictly within each user, inside the preset's date range;
* items carry titles ``"Words (1997)"``, 1-3 ML-100K genres, a topic-structured text
  description (:mod:`recsys_fast.data.text`) and ``vote_count``/``vote_average`` computed from
  the generated ratings.

All randomness comes from one ``numpy.random.Generator(PCG64(seed))``: the same seed and spec
give the same bytes. The ratings frame is sorted by user, then timestamp (as ML-1M and later).

Cost (2-core machine): ``"10m"`` about 6 s of CPU, ``"25m"`` about 13 s of CPU and 2.0 GiB
peak RSS. The per-user sampling loop is a small numba kernel (compiled once, cached on disk);
it draws from the same PCG64 generator, so numba does not change the stream.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import numbers
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from recsys_fast.data import text as _text
from recsys_fast.data.interactions import Interactions, make_items_frame, make_ratings_frame
from recsys_fast.data.text import GENRES, synthetic_documents

__all__ = [
    "GENRES",
    "SCALES",
    "LARGE_SCALES",
    "SCALE_NAMES",
    "SHAPES",
    "SyntheticSpec",
    "generate",
    "scale_spec",
    "shaped",
    "spec_for",
    "synthetic_documents",
]


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and shape of a synthetic data set.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        Exact sizes. Every user gets at least ``min_per_user`` ratings.
    popularity_exponent : float
        Zipf exponent ``a``: item at popularity rank ``r`` has weight ``(r + q) ** -a``.
    popularity_offset : float
        Zipf-Mandelbrot offset ``q`` (0: plain Zipf; larger flattens the head).
    activity_sigma : float
        Sigma of the lognormal user-activity weights (larger: heavier tail).
    activity_tail : float
        Pareto index ``alpha`` of a heavy tail multiplied into the activity weights
        (``1 + Pareto(alpha)``; smaller: heavier); 0 for none.
    min_per_user : int
        Fewest ratings per user (MovieLens keeps users with 20 or more).
    max_user_share : float
        Most ratings per user as a share of ``n_items`` (raised when the sizes need it).
    t_start, t_end : int
        Unix-time range of the timestamps.
    words : tuple of int
        Fewest and most words in an item description.
    seed : int
        Default seed of :func:`generate`.
    name : str
        Name of the generated data set.
    """

    n_users: int
    n_items: int
    n_ratings: int
    popularity_exponent: float = 0.85
    activity_sigma: float = 1.2
    popularity_offset: float = 0.0
    activity_tail: float = 0.0
    min_per_user: int = 20
    max_user_share: float = 0.45
    t_start: int = 874_724_710
    t_end: int = 893_286_638
    words: tuple[int, int] = (20, 60)
    seed: int = 0
    name: str = "synthetic"

    def __post_init__(self) -> None:
        for f in ("n_users", "n_items", "n_ratings", "min_per_user", "t_start", "t_end", "seed"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"SyntheticSpec.{f} must be an int, got {v!r}")
        for f in ("n_users", "n_items", "n_ratings", "min_per_user"):
            if getattr(self, f) < 1:
                raise ValueError(f"SyntheticSpec.{f} must be >= 1, got {getattr(self, f)}")
        if self.seed < 0:
            raise ValueError(f"SyntheticSpec.seed must be >= 0, got {self.seed}")
        # upper bounds keep every weight a normal float (no underflow to 0, no overflow)
        for f, hi in (("popularity_exponent", 10), ("activity_sigma", 10), ("max_user_share", 1),
                      ("popularity_offset", 1e6), ("activity_tail", 10)):
            v = getattr(self, f)
            if not isinstance(v, numbers.Real) or not (0 <= v <= hi):
                raise ValueError(f"SyntheticSpec.{f} must be a number in [0, {hi}], got {v!r}")
        if 0 < self.activity_tail < 0.5:
            raise ValueError(f"SyntheticSpec.activity_tail must be 0 (none) or in [0.5, 10], "
                             f"got {self.activity_tail!r}")
        cells = self.n_users * self.n_items
        if self.n_ratings > cells:
            raise ValueError(
                f"SyntheticSpec.n_ratings={self.n_ratings:,} exceeds n_users * n_items = "
                f"{self.n_users:,} * {self.n_items:,} = {cells:,} distinct pairs"
            )
        if self.min_per_user > self.n_items:
            raise ValueError(
                f"SyntheticSpec.min_per_user={self.min_per_user} exceeds n_items={self.n_items}"
            )
        if self.min_per_user * self.n_users > self.n_ratings:
            raise ValueError(
                f"SyntheticSpec.min_per_user={self.min_per_user} * n_users={self.n_users:,} "
                f"exceeds n_ratings={self.n_ratings:,}"
            )
        if self.t_end - self.t_start < self.n_items:
            raise ValueError(
                f"SyntheticSpec.t_end - t_start = {self.t_end - self.t_start} seconds is too "
                f"short for strictly increasing timestamps of up to n_items={self.n_items} ratings"
            )
        lo, hi = self.words
        if not (1 <= lo <= hi):
            raise ValueError(
                f"SyntheticSpec.words must be (lo, hi) with 1 <= lo <= hi, got {self.words}"
            )

    def scaled(self, fraction: float) -> SyntheticSpec:
        """The same shape with users, items and ratings multiplied by ``fraction``."""
        nu = max(1, round(self.n_users * fraction))
        ni = max(self.min_per_user, round(self.n_items * fraction))
        nr = max(nu * self.min_per_user, round(self.n_ratings * fraction))
        return dataclasses.replace(
            self,
            n_users=nu,
            n_items=ni,
            n_ratings=min(nr, nu * ni),
            name=f"{self.name}-x{fraction:g}",
        )


def _ts(year: int, month: int, day: int) -> int:
    return int(_dt.datetime(year, month, day, tzinfo=_dt.timezone.utc).timestamp())


#: Presets with the exact sizes and date ranges of MovieLens 100K, 1M, 10M and 25M.
SCALES: dict[str, SyntheticSpec] = {
    "100k": SyntheticSpec(943, 1_682, 100_000, name="synthetic-100k"),
    "1m": SyntheticSpec(
        6_040, 3_706, 1_000_209, t_start=956_703_932, t_end=1_046_454_590, name="synthetic-1m"
    ),
    "10m": SyntheticSpec(
        69_878, 10_677, 10_000_054, popularity_exponent=0.95,
        t_start=_ts(1995, 1, 9), t_end=_ts(2009, 1, 6), name="synthetic-10m",
    ),
    "25m": SyntheticSpec(
        162_541, 59_047, 25_000_095, popularity_exponent=1.05,
        t_start=_ts(1995, 1, 9), t_end=_ts(2019, 11, 22), name="synthetic-25m",
    ),
}  # fmt: skip


# The smoke-test scale: big enough for top-50 neighbours, small enough for CI.
TINY = dataclasses.replace(SCALES["100k"], n_users=300, n_items=400, n_ratings=12_000,
                           name="synthetic-tiny")
# Scales generated by partition straight to Parquet (recsys_fast.data.parquet), never as one
# table in memory: the 25m shape with 4x and 40x the users and ratings.
LARGE_SCALES: dict[str, SyntheticSpec] = {
    name: dataclasses.replace(SCALES["25m"], n_users=162_541 * f, n_ratings=25_000_095 * f,
                              name=f"synthetic-{name}")
    for name, f in (("100m", 4), ("1b", 40))
}
SCALE_NAMES = ("tiny", *SCALES, *LARGE_SCALES)
"""Every named scale, smallest first: the one list the harness, the CLI and the Parquet writer
share."""


def scale_spec(name: str) -> SyntheticSpec:
    """The spec of any named scale (:data:`SCALE_NAMES`); ValueError naming the valid ones."""
    key = name.lower() if isinstance(name, str) else name
    if key == "tiny":
        return TINY
    if key in LARGE_SCALES:
        return LARGE_SCALES[key]
    if key in SCALES:
        return SCALES[key]
    raise ValueError(f"unknown scale {name!r}; valid: {', '.join(SCALE_NAMES)}")


# Named shapes: the laws that set the work (popularity and activity), over a scale's sizes.
SHAPES: dict[str, dict] = {
    "default": {},  # the scale's own laws (ML-shaped)
    "flat": {"popularity_exponent": 0.5, "activity_sigma": 0.6},
    "steep": {"popularity_exponent": 1.2, "activity_sigma": 1.6},
    "mandelbrot": {"popularity_offset": 50.0},  # a flattened head
    "pareto-users": {"activity_tail": 1.2},  # a few very heavy users
    "light-users": {"min_per_user": 5, "activity_sigma": 1.5},
    "capped-users": {"max_user_share": 0.05},
    "very-flat": {"popularity_exponent": 0.3, "activity_sigma": 0.4},
    "heavy-head": {"popularity_exponent": 1.6},
    "heavy-users": {"activity_sigma": 1.4, "activity_tail": 0.8},
    # the laws of the real sets (bench/fit_shapes.py: generated at each set's own sizes, these
    # nominal values show its popularity slope, activity spread and per-user cap)
    "ml-100k-fit": {"popularity_exponent": 1.005, "activity_sigma": 1.378,
                    "max_user_share": 0.438},
    "latest-small-fit": {"popularity_exponent": 1.421, "activity_sigma": 1.579,
                         "max_user_share": 0.277},
    "ratings-small-fit": {"popularity_exponent": 1.352, "activity_sigma": 1.494,
                          "max_user_share": 0.264},
}


def shaped(scale: str | SyntheticSpec, shape: str = "default") -> SyntheticSpec:
    """The spec of ``scale`` with the laws of the named ``shape`` (:data:`SHAPES`).

    Raises
    ------
    ValueError
        Unknown scale or shape (the message lists the valid names), or a shape whose laws the
        scale's sizes cannot meet.
    """
    spec = spec_for(scale)
    if shape not in SHAPES:
        raise ValueError(f"unknown synthetic shape {shape!r}; valid: {', '.join(SHAPES)}")
    if shape == "default":
        return spec
    return dataclasses.replace(spec, **SHAPES[shape], name=f"{spec.name}-{shape}")


def spec_for(scale: str | SyntheticSpec) -> SyntheticSpec:
    """The preset spec for ``scale`` (``"100k"``, ``"1m"``, ``"10m"``, ``"25m"``); a spec passes.

    Raises
    ------
    ValueError
        If ``scale`` is not a preset name; the message lists the valid names.
    """
    if isinstance(scale, SyntheticSpec):
        return scale
    if isinstance(scale, str) and scale.lower() in SCALES:
        return SCALES[scale.lower()]
    raise ValueError(f"unknown synthetic scale {scale!r}; valid: {', '.join(SCALES)}")


# ML-100K rating shares for 1..5; latent cut points are their normal quantiles.
RATING_SHARES = (0.0611, 0.1137, 0.2715, 0.3417, 0.2120)
_CUTS = np.array([NormalDist().inv_cdf(c) for c in np.cumsum(RATING_SHARES)[:-1]])
_SD_USER, _SD_ITEM, _SD_NOISE = 0.5, 0.6, 0.8
_POP_CORR = 0.35  # popular items are rated a little higher, as in real data

# Users whose items leave less than this share of the popularity weight unpicked would make
# the rejection sampler spin; they are sampled exactly by Gumbel-top-k over all items instead.
_MIN_TAIL = 0.05
_GUMBEL_CELLS = 1 << 22  # cells per Gumbel chunk (32 MiB of float64)


def _user_counts(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Ratings per user: ``min_per_user`` + a lognormal share of the rest, capped, summing exactly."""
    n = spec.n_users
    cap = min(
        spec.n_items,
        max(int(spec.max_user_share * spec.n_items), spec.min_per_user, -(-spec.n_ratings // n)),
    )
    w = rng.lognormal(0.0, spec.activity_sigma, n)
    if spec.activity_tail > 0:
        w *= 1.0 + rng.pareto(spec.activity_tail, n)
    extra = spec.n_ratings - n * spec.min_per_user
    room = cap - spec.min_per_user
    capped = np.zeros(n, dtype=bool)
    while True:  # water-filling: hand the excess of capped users to the others
        free_w = w[~capped].sum()
        share = (extra - room * capped.sum()) * w / free_w
        over = ~capped & (share > room)
        if not over.any():
            break
        capped |= over
    alloc = np.where(capped, float(room), share)
    base = np.minimum(np.floor(alloc), room).astype(np.int64)
    rest = extra - int(base.sum())
    frac = np.where(base < room, alloc - base, -1.0)
    base[np.argsort(-frac, kind="stable")[:rest]] += 1
    return spec.min_per_user + base


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table: draw ``j = floor(u * n)``, keep it if ``frac < prob[j]``."""
    n = len(weights)
    scaled = weights * (n / weights.sum())
    prob = np.ones(n)
    alias = np.arange(n, dtype=np.int64)
    small = [int(k) for k in np.flatnonzero(scaled < 1.0)]
    large = [int(k) for k in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias  # leftovers keep prob 1 (rounding only)


_KERNEL = None


def _successive_kernel():
    """The numba kernel, compiled on first use (numba is imported lazily: it is slow to load)."""
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        @njit(cache=True)
        def successive(rng, need, offsets, skip, prob, alias, out):  # pragma: no cover - jitted
            n_items = prob.size
            mark = np.full(n_items, -1, np.int64)
            for u in range(need.size):
                if skip[u]:
                    continue
                pos = offsets[u]
                end = pos + need[u]
                while pos < end:
                    x = rng.random() * n_items
                    j = min(int(x), n_items - 1)
                    if x - j >= prob[j]:
                        j = alias[j]
                    if mark[j] != u:  # new for this user: accept (sampling without replacement)
                        mark[j] = u
                        out[pos] = j
                        pos += 1

        _KERNEL = successive
    return _KERNEL


def _sample_exact(rng, users, counts, log_p):
    """Exact successive sampling without replacement by Gumbel-top-k, in chunks of users."""
    n_items = len(log_p)
    out: list[np.ndarray] = []
    step = max(1, _GUMBEL_CELLS // n_items)
    for s in range(0, len(users), step):
        chunk = users[s : s + step]
        keys = rng.gumbel(size=(len(chunk), n_items))
        keys += log_p
        order = np.argsort(-keys, axis=1, kind="stable")  # draw order = descending key
        c = counts[chunk]
        mask = np.arange(n_items) < c[:, None]
        out.append(order[mask].astype(np.int32))
    return np.concatenate(out) if out else np.empty(0, np.int32)


def _sample_pairs(rng, spec, counts, weights):
    """Item index per rating, rows grouped by user, each user's items in draw order.

    Each user's items are a successive weighted sample without replacement: draw by the alias
    method, skip items the user already has. Users whose items would be mostly rejected (they
    need nearly all the weight) are sampled exactly by Gumbel-top-k, the same distribution.
    """
    desc = np.sort(weights)[::-1]
    tail = 1.0 - np.cumsum(desc) / desc.sum()  # weight left after a user's need heaviest items
    heavy = tail[counts - 1] < _MIN_TAIL
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    items = np.empty(int(counts.sum()), dtype=np.int32)
    prob, alias = _alias_table(weights)
    _successive_kernel()(rng, counts, offsets, heavy, prob, alias, items)
    ex_i = _sample_exact(rng, np.flatnonzero(heavy), counts, np.log(weights))
    if len(ex_i):
        items[np.repeat(heavy, counts)] = ex_i
    return np.repeat(np.arange(spec.n_users, dtype=np.int32), counts), items


def _cover_all_items(rng, u, i, n_items):
    """Give every item at least one rating by moving a few ratings off the most popular items.

    A moved rating keeps its user, and an unrated item is new to every user, so no duplicate
    pair appears and the per-user counts do not change.
    """
    cnt = np.bincount(i, minlength=n_items)
    missing = np.flatnonzero(cnt == 0)
    if len(missing) == 0:
        return
    donors = np.flatnonzero(cnt[i] > len(missing) + 1)
    if len(donors) < len(missing):
        return  # degenerate tiny spec: leave the gaps
    rows = rng.choice(donors, size=len(missing), replace=False)
    i[rows] = rng.permutation(missing).astype(i.dtype)


def _ratings(rng, u, i, n_users, weights):
    """1..5 from user bias + item bias (partly popularity) + noise, cut at ML-100K shares."""
    logp = np.log(weights)
    pop = (logp - logp.mean()) / (logp.std() or 1.0)
    item_bias = _POP_CORR * pop + np.sqrt(1 - _POP_CORR**2) * rng.standard_normal(len(weights))
    item_bias = (_SD_ITEM * item_bias).astype(np.float32)
    user_bias = (_SD_USER * rng.standard_normal(n_users)).astype(np.float32)
    # float32 halves the memory traffic at 25M rows; the cut points need no more precision
    z = rng.standard_normal(len(u), dtype=np.float32)
    z *= np.float32(_SD_NOISE)
    z += user_bias[u]
    z += item_bias[i]
    # standardise over the ratings actually drawn: popular items (higher bias) are drawn
    # more often, which would otherwise shift the histogram up
    z -= z.mean(dtype=np.float64)
    z /= z.std(dtype=np.float64) or 1.0
    return (np.searchsorted(_CUTS.astype(np.float32), z) + 1).astype(np.float32)


def _timestamps(rng, spec, counts):
    """Strictly increasing times per user (rows grouped by user) inside [t_start, t_end]."""
    window = spec.t_end - spec.t_start
    # activity spans: median about two weeks, some users active for years
    span = np.exp(rng.normal(np.log(14 * 86_400), 2.0, spec.n_users))
    span = np.clip(span, counts, window).astype(np.int64)
    start = spec.t_start + (rng.random(spec.n_users) * (window - span + 1)).astype(np.int64)
    gaps = rng.standard_exponential(int(counts.sum()), dtype=np.float32)
    cum = np.cumsum(gaps, dtype=np.float64)
    ends = np.cumsum(counts)
    total = cum[ends - 1] - np.r_[0.0, cum[ends[:-1] - 1]]
    base = np.repeat(np.r_[0.0, cum[ends[:-1] - 1]], counts)
    frac = (cum - base) / np.repeat(total, counts)  # in (0, 1], increasing per user
    k = np.arange(len(cum)) - np.repeat(ends - counts, counts)
    # floor is non-decreasing and k strictly increasing, so times strictly increase
    off = np.floor(frac * np.repeat(span - counts, counts)).astype(np.int64) + k
    return np.repeat(start, counts) + off


def _items_frame(rng, spec, weights, i, ratings) -> pd.DataFrame:
    model = _text.TextModel(rng, n_names=max(64, 2 * spec.n_items))
    flags, primary, secondary = _text.draw_genres(rng, spec.n_items)
    theme = model.assign_themes(rng, primary)
    last_year = _dt.datetime.fromtimestamp(spec.t_end, _dt.timezone.utc).year
    years = np.maximum(last_year - rng.exponential(12.0, spec.n_items).astype(np.int64), 1920)
    titles = [f"{t} ({y})" for t, y in zip(model.titles(rng, theme), years.tolist(), strict=True)]
    texts = model.descriptions(rng, theme, secondary, spec.words)
    count = np.bincount(i, minlength=spec.n_items)
    total = np.bincount(i, weights=ratings, minlength=spec.n_items)
    average = np.divide(total, count, out=np.zeros(spec.n_items), where=count > 0)
    return make_items_frame(
        np.arange(1, spec.n_items + 1),
        title=titles,
        genres=_text.genre_strings(flags),
        text=texts,
        vote_count=count.astype(np.int64),
        vote_average=average,
    )


OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other",
    "programmer", "retired", "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip


def _users_frame(rng, n_users) -> pd.DataFrame:
    """Demographics in the ML-100K ``u.user`` schema (age, gender, occupation, zip_code)."""
    age = np.clip(rng.normal(33, 12, n_users), 7, 73).astype(np.int64)
    gender = np.where(rng.random(n_users) < 0.71, "M", "F")
    occ = np.array(OCCUPATIONS)[rng.integers(0, len(OCCUPATIONS), n_users)]
    zips = np.char.zfill(rng.integers(0, 100_000, n_users).astype(str), 5)
    return pd.DataFrame(
        {"age": age, "gender": gender, "occupation": occ, "zip_code": zips},
        index=pd.Index(np.arange(1, n_users + 1), name="user_id"),
    )


def generate(scale_or_spec: str | SyntheticSpec = "100k", seed: int | None = None) -> Interactions:
    """Generate a synthetic data set; the same spec and seed give identical frames.

    Parameters
    ----------
    scale_or_spec : str or SyntheticSpec
        A preset name from :data:`SCALES` or a spec.
    seed : int, optional
        Overrides ``spec.seed`` (0 for the presets).

    Returns
    -------
    Interactions
        Ratings sorted by user then timestamp, 1-based ids; items with title, genres, text,
        vote_count, vote_average; users with ML-100K demographics; ``meta["spec"]``.

    Raises
    ------
    ValueError
        Unknown scale, or a negative seed.
    """
    spec = spec_for(scale_or_spec)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    # Zipf weights on a random ranking, so item ids say nothing about popularity
    ranks = rng.permutation(spec.n_items) + 1
    weights = (ranks + spec.popularity_offset) ** -spec.popularity_exponent
    counts = _user_counts(rng, spec)
    u, i = _sample_pairs(rng, spec, counts, weights)
    _cover_all_items(rng, u, i, spec.n_items)
    ratings = _ratings(rng, u, i, spec.n_users, weights)
    ts = _timestamps(rng, spec, counts)
    items = _items_frame(rng, spec, weights, i, ratings)
    users = _users_frame(rng, spec.n_users)
    frame = make_ratings_frame(u + 1, i + 1, ratings, ts)
    return Interactions(
        ratings=frame,
        items=items,
        users=users,
        name=spec.name,
        meta={"source": "synthetic", "spec": dataclasses.asdict(spec)},
    )


# -- writers ----------------------------------------------------------------------------------


