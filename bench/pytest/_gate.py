"""Regression gate for pytest-benchmark runs, with the harness's statistics.

pytest-benchmark's own ``--benchmark-compare-fail=median:15%`` compares two medians as if they
were exact: on a noisy machine an unchanged commit reads 18-41 % slower and fails, and the
failure is a traceback. This gate, active whenever ``--benchmark-compare`` is given, judges
each case present in both runs by ``median(now) / median(saved)`` with a 95 % percentile
bootstrap interval (``recsys_fast.harness.stats``, rounds resampled independently: the runs
were not interleaved, so drift between them is not controlled) and fails the session (exit 1)
only when the interval's lower bound exceeds ``1 + --gate-threshold`` (default 0.15): the case
is slower by more than the threshold beyond what the rounds' noise explains. It prints one line
per regressed case and no traceback. A case with fewer than :data:`MIN_ROUNDS` rounds on
either side is listed as not judged, never failed.

The saved run must hold its per-round times: save it with ``--benchmark-save-data``.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys_fast.harness import stats

DEFAULT_THRESHOLD = 0.15
MIN_ROUNDS = 5


@dataclass(frozen=True)
class Judged:
    """One case: ``ratio`` = median(now) / median(saved), > 1 slower now; ``verdict`` is
    ``"slower"``, ``"ok"`` or ``"not judged"`` (``note`` says why)."""

    name: str
    verdict: str
    ratio: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    n_saved: int = 0
    n_now: int = 0
    note: str = ""

    def line(self, threshold: float) -> str:
        if self.verdict == "not judged":
            return f"not judged  {self.name}: {self.note}"
        word = "REGRESSED" if self.verdict == "slower" else "ok"
        return (f"{word:10s}  {self.name}: now/saved {self.ratio:.3f} [95 % CI {self.lo:.3f}, "
                f"{self.hi:.3f}] vs limit {1 + threshold:.2f} ({self.n_saved} saved, "
                f"{self.n_now} new rounds)")


def judge(name: str, saved: list[float], now: list[float],
          threshold: float = DEFAULT_THRESHOLD) -> Judged:
    """Verdict on one case's per-round times (seconds) of the saved and the current run."""
    if len(saved) < MIN_ROUNDS or len(now) < MIN_ROUNDS:
        return Judged(name, "not judged", n_saved=len(saved), n_now=len(now),
                      note=f"{len(saved)} saved / {len(now)} new rounds, fewer than "
                           f"{MIN_ROUNDS} (set RECSYS_FAST_BENCH_ROUNDS)")
    ratio, boot, _ = stats.bootstrap(now, saved, paired=False)
    lo, hi = stats.interval(boot, ratio)
    verdict = "slower" if lo > 1 + threshold else "ok"
    return Judged(name, verdict, ratio, lo, hi, len(saved), len(now))


def judge_runs(saved: dict, now: dict[str, list[float]],
               threshold: float = DEFAULT_THRESHOLD) -> list[Judged]:
    """Judge every case of ``now`` (fullname -> round times) that the saved run has.

    ``saved`` is the ``benchmarks`` list of a pytest-benchmark JSON file, or a
    ``{fullname: entry}`` mapping of it; an entry without ``stats.data`` is not judged.
    """
    if isinstance(saved, list):
        saved = {b["fullname"]: b for b in saved}
    out = []
    for name, times in now.items():
        entry = saved.get(name)
        if entry is None:
            continue
        data = (entry.get("stats") or {}).get("data")
        if not data:
            out.append(Judged(name, "not judged", n_now=len(times),
                              note="the saved run has no per-round times (save it with "
                                   "--benchmark-save-data)"))
            continue
        out.append(judge(name, [float(x) for x in data], list(times), threshold))
    return out


# -- pytest hooks (conftest.py imports them) --------------------------------------------------
def pytest_addoption(parser) -> None:
    parser.getgroup("recsys-fast regression gate").addoption(
        "--gate-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="FRACTION",
        help="with --benchmark-compare: fail when a case is significantly slower than the saved "
             "run by more than this (default 0.15 = 15%%)")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Runs after pytest-benchmark's own ``finish`` (its hook wraps this one)."""
    config = session.config
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not getattr(bs, "compare", None) or getattr(bs, "disabled", False):
        return
    threshold = config.getoption("gate_threshold")
    if not bs.compared_mapping:
        config._recsys_gate = (threshold, None, [])
        return
    path, saved = list(bs.compared_mapping.items())[-1]
    now = {b.fullname: list(b.stats.data) for b in bs.benchmarks if b}
    judged = judge_runs(saved, now, threshold)
    config._recsys_gate = (threshold, path, judged)
    if any(j.verdict == "slower" for j in judged):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    found = getattr(config, "_recsys_gate", None)
    if found is None:
        return
    threshold, path, judged = found
    tr = terminalreporter
    tr.write_sep("-", "regression gate (bench/pytest/_gate.py)")
    if path is None:
        tr.write_line("gate: no saved run to compare with; nothing judged")
        return
    slower = [j for j in judged if j.verdict == "slower"]
    tr.write_line(f"gate: {len(judged)} case(s) compared with {path} (across runs: drift not "
                  f"controlled); fails when the 95 % interval of now/saved lies above "
                  f"{1 + threshold:.2f}")
    for j in judged:
        if j.verdict != "ok" or tr.verbosity > 0:
            tr.write_line(j.line(threshold), red=j.verdict == "slower", bold=j.verdict == "slower")
    tr.write_line(f"gate: {len(slower)} case(s) regressed" if slower
                  else "gate: no case significantly slower", red=bool(slower), green=not slower)
