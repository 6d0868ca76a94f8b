"""Ratios of medians with bootstrap confidence intervals.

Every speedup in a results file is ``median(baseline) / median(candidate)`` of two cases timed in
the same run. Its 95 % interval is a percentile bootstrap (``N_BOOT`` resamples, fixed seed, so
the same file always gives the same interval): when both cases ran the same number of
interleaved rounds in the same worker, round ``r`` of one is resampled together with round ``r``
of the other (paired: drift that hit both cancels); otherwise each side is resampled on its own.
asv's ``statistics.py`` bootstraps medians the same way. A ratio whose interval contains 1 is
flagged ``significant: false``: the run cannot tell the two apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 4000
CONFIDENCE = 0.95
METHOD = (f"percentile bootstrap of the ratio of medians, {N_BOOT} resamples, "
          f"{CONFIDENCE:.0%} interval; rounds resampled in pairs when interleaved")


@dataclass(frozen=True)
class Ratio:
    """``value`` = median(baseline) / median(candidate); > 1: the candidate is faster."""

    value: float
    lo: float
    hi: float
    paired: bool
    n_baseline: int
    n_candidate: int

    @property
    def significant(self) -> bool:
        """The interval excludes 1: the difference is real at this confidence."""
        return self.lo > 1.0 or self.hi < 1.0

    @property
    def rel_width(self) -> float:
        """Interval width relative to the ratio (0.1 = the ratio is known to about ±5 %)."""
        return (self.hi - self.lo) / self.value if self.value > 0 else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["significant"] = self.significant
        d["rel_width"] = self.rel_width
        return d


def _medians(samples: np.ndarray) -> np.ndarray:
    return np.median(samples, axis=1)


def bootstrap(baseline: list[float] | np.ndarray, candidate: list[float] | np.ndarray, *,
              paired: bool, n_boot: int = N_BOOT, seed: int = 0
              ) -> tuple[float, np.ndarray, bool]:
    """``(median(baseline) / median(candidate), the n_boot resampled ratios, paired used)``.

    ``paired`` resamples round ``r`` of both together (needs equal lengths, else the sides are
    resampled independently).

    Raises
    ------
    ValueError
        An empty sample or a non-positive / non-finite time.
    """
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    for name, x in (("baseline", a), ("candidate", b)):
        if x.size == 0:
            raise ValueError(f"{name} has no timed rounds")
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} holds a non-positive or non-finite time: {x.tolist()}")
    paired = bool(paired and a.size == b.size)
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, a.size, size=(n_boot, a.size))
        ra, rb = a[idx], b[idx]
    else:
        ra = a[rng.integers(0, a.size, size=(n_boot, a.size))]
        rb = b[rng.integers(0, b.size, size=(n_boot, b.size))]
    return float(np.median(a) / np.median(b)), _medians(ra) / _medians(rb), paired


def interval(boot: np.ndarray, value: float, confidence: float = CONFIDENCE
             ) -> tuple[float, float]:
    """Percentile interval of the resampled ratios, widened to contain ``value``."""
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return float(min(lo, value)), float(max(hi, value))


def ratio_ci(baseline: list[float] | np.ndarray, candidate: list[float] | np.ndarray, *,
             paired: bool, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
             seed: int = 0) -> Ratio:
    """Bootstrap interval of ``median(baseline) / median(candidate)`` (see :func:`bootstrap`:
    per-round times in seconds, in round order)."""
    value, boot, paired = bootstrap(baseline, candidate, paired=paired, n_boot=n_boot, seed=seed)
    lo, hi = interval(boot, value, confidence)
    return Ratio(value, lo, hi, paired, len(baseline), len(candidate))
