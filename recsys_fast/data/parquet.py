"""Synthetic ratings as partitioned Parquet, one file per user range, written one at a time.

``write_synthetic_parquet(scale, out)`` writes ``part-00000.parquet``, ``part-00001.parquet``,
... (the ratings schema: ``user_id, item_id`` int64, ``rating`` float32, ``timestamp`` int64,
sorted by user then timestamp) and ``_synthetic.json`` (spec, seed, mode, user range of each
part). Two modes:

- ``memory`` (default up to the ``25m`` preset): :func:`recsys_fast.data.synthetic.generate`
  builds the data set and its ratings are cut into user ranges: the same seed gives exactly
  the rows of the in-memory generator. Peak memory is the generator's (2 GiB at ``25m``).
- ``stream`` (default above ``25m``: the :data:`LARGE_SCALES` ``100m`` and ``1b``): the user
  counts and item popularity are drawn for the whole set as in ``generate`` (the same values
  for the same seed), then each user range is generated and written on its own, from its own
  random stream (``SeedSequence([seed, first_user])``), so memory is bounded by one part.
  What differs from ``generate``: the items each user rates and the noise come from the
  per-range streams; the rating cut points are standardised per range (not over the whole
  set); no pass moves ratings to items nobody rated; no item or user tables are written. The
  data depend on ``partition_users``; the same seed and partitioning give the same files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from recsys_fast.data import synthetic as syn
from recsys_fast.data.interactions import make_ratings_frame

#: Out-of-core presets: ML-25M's item catalogue with 4x and 40x the users and ratings.
LARGE_SCALES = syn.LARGE_SCALES
MEMORY_MAX_RATINGS = syn.SCALES["25m"].n_ratings  # largest set built in memory by default
DEFAULT_PARTITION_USERS = 100_000
MODES = ("auto", "memory", "stream")
META = "_synthetic.json"


def spec_for(scale: str | syn.SyntheticSpec) -> syn.SyntheticSpec:
    """The spec of a named scale (:func:`synthetic.scale_spec`) or a spec."""
    if isinstance(scale, syn.SyntheticSpec):
        return scale
    try:
        return syn.scale_spec(scale)
    except ValueError:
        valid = ", ".join([*syn.SCALES, *LARGE_SCALES])
        raise ValueError(f"unknown synthetic scale {scale!r}; valid: {valid}") from None


def _write_part(frame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_synthetic_parquet(
    scale_or_spec: str | syn.SyntheticSpec,
    out: str | Path,
    *,
    seed: int | None = None,
    partition_users: int | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Write a synthetic ratings set as Parquet, one file per range of users.

    Parameters
    ----------
    scale_or_spec : str or SyntheticSpec
        ``100k`` ... ``25m``, ``100m``, ``1b`` or a spec.
    out : path
        Folder (created): new, empty, or written by this function before (its files are
        replaced); a folder holding other files is refused.
    seed : int, optional
        Overrides the spec's seed.
    partition_users : int, optional
        Users per file (default 100,000).
    mode : {"auto", "memory", "stream"}
        See the module notes; ``auto``: ``memory`` up to 25M ratings, else ``stream``.

    Returns
    -------
    dict
        What ``_synthetic.json`` holds: spec, seed, mode, ``parts`` (file, first and last
        user id, rows).

    Raises
    ------
    BackendUnavailableError
        pyarrow is not installed.
    RecsysFastError
        ``out`` holds files this function did not write.
    ValueError
        Unknown scale or mode, ``partition_users`` < 1.
    """
    from recsys_fast.errors import BackendUnavailableError

    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            'writing Parquet needs pyarrow: pip install "recsys-fast[dask]"') from exc
    spec = spec_for(scale_or_spec)
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        mode = "memory" if spec.n_ratings <= MEMORY_MAX_RATINGS else "stream"
    step = DEFAULT_PARTITION_USERS if partition_users is None else int(partition_users)
    if step < 1:
        raise ValueError(f"partition_users must be >= 1, got {partition_users!r}")
    folder = _own_folder(Path(out))
    ranges = [(lo, min(spec.n_users, lo + step)) for lo in range(0, spec.n_users, step)]
    head = {"spec": dataclasses.asdict(spec), "seed": spec.seed, "mode": mode}
    # written first: an interrupted write leaves only files this writer names (the next
    # write clears them) and a folder readers refuse as unfinished
    _write_meta(folder, {**head, "complete": False,
                         "parts": [{"file": _part_name(p)} for p in range(len(ranges))]})
    parts = []
    frames = _memory_parts(spec, ranges) if mode == "memory" else _stream_parts(spec, ranges)
    for p, ((lo, hi), frame) in enumerate(zip(ranges, frames, strict=True)):
        name = _part_name(p)
        _write_part(frame, folder / name)
        parts.append({"file": name, "first_user": lo + 1, "last_user": hi, "rows": len(frame)})
        del frame
    meta = {**head, "complete": True, "parts": parts}
    _write_meta(folder, meta)
    return meta


def _part_name(p: int) -> str:
    return f"part-{p:05d}.parquet"


def _write_meta(folder: Path, meta: dict) -> None:
    from recsys_fast.data.manifest import write_json_atomic

    write_json_atomic(folder / META, meta)


def check_complete(folder: str | Path) -> None:
    """RecsysFastError when ``folder`` holds a synthetic Parquet write that did not finish
    (its ``_synthetic.json`` says so); a folder without one passes."""
    from recsys_fast.errors import RecsysFastError

    meta = Path(folder) / META
    if not meta.is_file():
        return
    try:
        complete = json.loads(meta.read_text()).get("complete", True)
    except (OSError, ValueError, AttributeError):
        complete = False
    if complete is not True:
        raise RecsysFastError(f"{folder} holds an unfinished synthetic Parquet write "
                              f"({META} does not mark it complete); write it again")


def _own_folder(folder: Path) -> Path:
    """``folder``, created if needed, emptied of the parts of an earlier write; a folder that
    holds files this writer did not write is refused."""
    from recsys_fast.errors import RecsysFastError

    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / META
    ours = set()
    if meta.exists():
        try:
            ours = {p["file"] for p in json.loads(meta.read_text())["parts"]} | {meta.name}
        except (ValueError, KeyError, TypeError):
            ours = set()
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours)
    if foreign:
        raise RecsysFastError(
            f"{folder} holds files this Parquet writer did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); choose a new or empty folder"
        )
    for name in ours:
        (folder / name).unlink(missing_ok=True)
    return folder


def _memory_parts(spec, ranges):
    ratings = syn.generate(spec).ratings  # sorted by user, 1-based contiguous user ids
    bounds = np.searchsorted(ratings["user_id"].to_numpy(), [lo + 1 for lo, _ in ranges]
                             + [spec.n_users + 1])
    for p in range(len(ranges)):
        yield ratings.iloc[bounds[p] : bounds[p + 1]].reset_index(drop=True)


def _stream_parts(spec, ranges):
    """Each user range's ratings frame in turn (see the module notes)."""
    rng0 = np.random.Generator(np.random.PCG64(spec.seed))
    ranks = rng0.permutation(spec.n_items) + 1  # the same draws as ``generate``
    weights = ranks.astype(np.float64) ** -spec.popularity_exponent
    counts = syn._user_counts(rng0, spec)
    logp = np.log(weights)
    pop = (logp - logp.mean()) / (logp.std() or 1.0)
    bias = syn._POP_CORR * pop + np.sqrt(1 - syn._POP_CORR**2) * rng0.standard_normal(len(pop))
    item_bias = (syn._SD_ITEM * bias).astype(np.float32)
    desc = np.sort(weights)[::-1]
    tail = 1.0 - np.cumsum(desc) / desc.sum()
    prob, alias = syn._alias_table(weights)
    kernel = syn._successive_kernel()
    cuts = syn._CUTS.astype(np.float32)
    for lo, hi in ranges:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([spec.seed, lo])))
        c = counts[lo:hi]
        heavy = tail[c - 1] < syn._MIN_TAIL
        offsets = np.r_[0, np.cumsum(c)[:-1]]
        items = np.empty(int(c.sum()), dtype=np.int32)
        kernel(rng, c, offsets, heavy, prob, alias, items)
        exact = syn._sample_exact(rng, np.flatnonzero(heavy), c, logp)
        if len(exact):
            items[np.repeat(heavy, c)] = exact
        local = np.repeat(np.arange(hi - lo, dtype=np.int64), c)
        z = rng.standard_normal(items.size, dtype=np.float32)
        z *= np.float32(syn._SD_NOISE)
        z += (syn._SD_USER * rng.standard_normal(hi - lo)).astype(np.float32)[local]
        z += item_bias[items]
        z -= z.mean(dtype=np.float64)
        z /= z.std(dtype=np.float64) or 1.0
        ratings = (np.searchsorted(cuts, z) + 1).astype(np.float32)
        del z
        sub = dataclasses.replace(spec, n_users=hi - lo, n_ratings=int(c.sum()))
        ts = syn._timestamps(rng, sub, c)
        yield make_ratings_frame(local + lo + 1, items.astype(np.int64) + 1, ratings, ts)
