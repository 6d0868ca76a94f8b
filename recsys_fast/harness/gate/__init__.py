"""``recsys-fast gate``: did a revision make a kernel slower? Base and head timed interleaved.

Each revision is checked out once into a cached git worktree (``--cache``, default
``~/.cache/recsys-fast/gate/<commit>``; ``.`` means the current checkout, uncommitted changes
included) and run by this interpreter with ``PYTHONPATH`` pointing at it: both revisions share
the installed dependencies (the gate refuses revisions whose ``pyproject.toml`` dependencies
differ). For each (kernel, scale) group, one worker per revision sets the cases up
(:mod:`~recsys_fast.harness.gate.serve`), then the gate asks for timed calls alternately —
base, head, head, base, … (ABBA, so neither side always runs first) — so machine drift hits
both alike and round ``r`` of base and head form a pair.

Decision per case (:func:`decide`), on the paired rounds: ``ratio`` = median(head) /
median(base) with a 95 % paired percentile-bootstrap interval and a one-sided bootstrap p-value
for "head is not slower". **slower** when the interval lies above 1 and the ratio exceeds
``1 + threshold``; **faster** symmetrically; **same** when the interval lies inside
``(1 / (1 + threshold), 1 + threshold)``; otherwise **undecided**. Sampling is adaptive: after
``min_rounds`` a case stops as soon as it is decided, else at ``max_rounds`` or when the time
budget runs out. Throughput metrics are derived from these times, so the gate has one
direction: lower time is better.

``metric="instructions"`` (:mod:`.instructions`) counts instructions instead: each worker runs
under valgrind's callgrind, counting only each timed call, which is deterministic; after a native
warm-up run per revision (numba's cache, the cost-model calibration), each case gets two counted
calls per side (ABBA) and :func:`decide_counts` compares head/base against the threshold
(default 2 %).

The gate fails (exit 1) on a *slower* case, on a *broken* case (either revision raised setting it
up or in its first call, or head lacks a case base runs), and when no case could be compared at
all: what it cannot judge does not pass. A case neither side can run here (an optional package
missing on this machine) or new in head is reported and left out.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys_fast.errors import RecsysFastError
from recsys_fast.harness import stats
from recsys_fast.harness.gate import instructions

DEFAULT_CACHE = Path.home() / ".cache" / "recsys-fast" / "gate"
DEFAULT_THRESHOLD = {"time": 0.15, "instructions": 0.02}
COUNTED_CALLS = 2
"""Counted calls per side and case with ``metric="instructions"``."""
SPREAD_NOTE = 0.001
"""Counts of one side that differ by more than this between calls are noted."""


class GateError(RecsysFastError):
    """A revision cannot be prepared or a worker failed."""


@dataclass(frozen=True)
class Decision:
    verdict: str  # slower | faster | same | undecided
    ratio: float
    lo: float
    hi: float
    p_not_slower: float
    rounds: int


def decide(base: list[float], head: list[float], threshold: float = 0.15,
           confidence: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Decision:
    """The gate's verdict on paired rounds (see module docstring)."""
    n = min(len(base), len(head))
    if n == 0:
        raise ValueError("no paired rounds")
    ratio, boot, _ = stats.bootstrap(head[:n], base[:n], paired=True, n_boot=n_boot, seed=seed)
    lo, hi = stats.interval(boot, ratio, confidence)
    p = float((boot <= 1.0).mean())  # bootstrap p-value of "head is not slower"
    up, down = 1 + threshold, 1 / (1 + threshold)
    if lo > 1 and ratio > up:
        verdict = "slower"
    elif hi < 1 and ratio < down:
        verdict = "faster"
    elif down < lo and hi < up:
        verdict = "same"
    else:
        verdict = "undecided"
    return Decision(verdict, ratio, lo, hi, p, n)


def decide_counts(base: list[int], head: list[int], threshold: float = 0.02) -> Decision:
    """The verdict on instruction counts: ``ratio`` = median(head) / median(base); **slower**
    above ``1 + threshold``, **faster** below ``1 / (1 + threshold)``, else **same**. ``lo``
    and ``hi`` are the extreme ratios of single calls; there is no p-value (nan)."""
    n = min(len(base), len(head))
    if n == 0:
        raise ValueError("no counted calls")
    b, h = base[:n], head[:n]
    ratio = float(np.median(h)) / float(np.median(b))
    if ratio > 1 + threshold:
        verdict = "slower"
    elif ratio < 1 / (1 + threshold):
        verdict = "faster"
    else:
        verdict = "same"
    return Decision(verdict, ratio, min(h) / max(b), max(h) / min(b), math.nan, n)


def choose_metric(metric: str, threshold: float | None) -> tuple[str, float, str | None]:
    """``(metric, threshold, note)``: ``instructions`` falls back to ``time`` where valgrind,
    its headers or a C compiler are missing (``note`` says why); a threshold left out (None)
    takes the metric's default (:data:`DEFAULT_THRESHOLD`)."""
    if metric not in DEFAULT_THRESHOLD:
        raise ValueError(f"unknown gate metric {metric!r}: choose one of "
                         f"{', '.join(DEFAULT_THRESHOLD)}")
    note = None
    if metric == "instructions":
        why = instructions.unavailable()
        if why:
            metric, note = "time", f"{why}; falling back to --metric time"
    return metric, DEFAULT_THRESHOLD[metric] if threshold is None else threshold, note


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the body (main thread only), so the gate's
    ``finally`` blocks close its workers and remove its temp folder as on Ctrl-C."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# -- revisions --------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True, timeout=120).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise GateError(f"git {' '.join(args)}: {exc.stderr.strip() or exc}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GateError(f"git {' '.join(args)}: {exc}") from None


def _dependencies(pyproject: str) -> list[str]:
    import tomllib

    return sorted(tomllib.loads(pyproject).get("project", {}).get("dependencies", []))


@dataclass
class Revision:
    name: str
    commit: str  # "working tree" for "."
    path: Path


def prepare_revision(repo: Path, rev: str, cache: Path) -> Revision:
    """A checkout of ``rev`` (cached by commit); ``.`` is the current working tree."""
    if rev == ".":
        return Revision(".", "working tree", repo)
    commit = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    path = cache / commit
    if not (path / "recsys_fast").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.rmtree(path)
        # --force: a cache folder deleted by hand leaves its worktree registered in git
        _git(repo, "worktree", "add", "--force", "--detach", str(path), commit)
    return Revision(rev, commit, path)


def check_same_dependencies(base: Revision, head: Revision) -> None:
    deps = [_dependencies((r.path / "pyproject.toml").read_text()) for r in (base, head)]
    if deps[0] != deps[1]:
        raise GateError("base and head declare different dependencies in pyproject.toml; the "
                        "gate runs both on this environment, so it cannot compare them")


# -- workers ----------------------------------------------------------------------------------
class ServeWorker:
    """One revision's worker for one group (see :mod:`gate_serve`)."""

    def __init__(self, rev: Revision, script: Path, keys: list[str], scale: str, log: Path,
                 *, prefix: list[str] | None = None, env: dict[str, str] | None = None):
        """``prefix``: a command the worker runs under (valgrind); ``env``: added variables."""
        env = dict(os.environ, PYTHONPATH=str(rev.path), TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        cmd = [*(prefix or []), sys.executable, str(script), json.dumps(keys), scale]
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env, text=True, bufsize=1,
                                     start_new_session=True)
        self._name, self._log_path = rev.name, log
        self.ready: dict | None = None

    def wait_ready(self) -> ServeWorker:
        """Block until the worker has set up its cases; fills :attr:`ready` (once)."""
        if self.ready is not None:
            return self
        try:
            line = self.proc.stdout.readline()
        except BaseException:  # interrupted while it sets up: stop it, then go on unwinding
            self.proc.kill()
            self.close()
            raise
        if not line:
            self.close()
            raise GateError(f"{self._name}: worker ended before it was ready "
                            f"(log: {self._log_path})")
        self.ready = json.loads(line)["ready"]
        return self

    def round(self, key: str) -> dict:
        """One timed call: the worker's reply (``t``, and ``instructions`` when counting)."""
        self.proc.stdin.write(json.dumps({"round": key}) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise GateError(f"worker died timing {key}")
        reply = json.loads(line)
        if "error" in reply:
            raise GateError(f"{key}: {reply['error']}")
        return reply

    def count(self, key: str) -> int:
        """One counted call's instructions (the worker runs under valgrind with the shim)."""
        n = self.round(key).get("instructions")
        if n is None:
            raise GateError(f"{key}: the worker returned no instruction count (is it running "
                            "under valgrind with the callgrind shim?)")
        return int(n)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
        self._log.close()


@dataclass
class CaseOutcome:
    key: str
    scale: str
    base_s: list[float] = field(default_factory=list)
    head_s: list[float] = field(default_factory=list)
    base_ir: list[int] = field(default_factory=list)  # instructions per counted call
    head_ir: list[int] = field(default_factory=list)
    decision: Decision | None = None
    note: str = ""
    broken: bool = False  # a revision failed the case, or head lost it (see the docstring)


def run_gate(repo: Path, base_rev: str, head_rev: str, keys_by_kernel: dict[str, list[str]],
             scale: str, *, budget: float = 600.0, threshold: float = 0.15,
             min_rounds: int = 6, max_rounds: int = 60, cache: Path = DEFAULT_CACHE,
             metric: str = "time", progress=print) -> list[CaseOutcome]:
    """Time (or count the instructions of) every case of the selection on both revisions,
    interleaved; see the module docstring. ``budget`` and the rounds apply to ``time``."""
    if metric not in DEFAULT_THRESHOLD:
        raise ValueError(f"unknown gate metric {metric!r}")
    counting = metric == "instructions"
    if counting and (why := instructions.unavailable()):
        raise GateError(why)
    base = prepare_revision(repo, base_rev, cache)
    head = prepare_revision(repo, head_rev, cache)
    check_same_dependencies(base, head)
    deadline = time.monotonic() + budget
    outcomes: list[CaseOutcome] = []
    with tempfile.TemporaryDirectory(prefix="recsys-gate-") as tmp:
        script = Path(tmp) / "gate_serve.py"
        shutil.copy(Path(__file__).with_name("serve.py"), script)
        count_env = _counting_env(Path(tmp)) if counting else {}
        groups = list(keys_by_kernel.items())
        for n, (kernel, keys) in enumerate(groups):
            share = (deadline - time.monotonic()) / (len(groups) - n)
            group_deadline = time.monotonic() + max(share, 0.0)
            if counting:
                progress(f"gate: {kernel} @ {scale}: warming {base.name} and {head.name} "
                         "natively (numba cache, calibration)")
                for i, r in enumerate((base, head)):  # one by one: calibration runs quiet
                    ServeWorker(r, script, keys, scale, Path(tmp) / f"{kernel}-warm-{i}.log",
                                env=instructions.worker_env()).wait_ready().close()
            progress(f"gate: {kernel} @ {scale}: setting up {base.name} and {head.name}"
                     + (" under valgrind, side by side" if counting else ""))
            workers = []
            try:
                for i, r in enumerate((base, head)):
                    log = Path(tmp) / f"{kernel}-{i}.log"
                    if counting:  # set up side by side: calibration ran natively above
                        workers.append(ServeWorker(
                            r, script, keys, scale, log, env=count_env,
                            prefix=instructions.valgrind_command(Path(tmp) / "callgrind")))
                    else:  # one at a time: a set-up may time a calibration
                        workers.append(ServeWorker(r, script, keys, scale, log).wait_ready())
                for w in workers:
                    w.wait_ready()
                if counting:
                    outcomes += _count_group(workers, keys, scale, threshold)
                else:
                    outcomes += _time_group(workers, keys, scale, group_deadline, threshold,
                                            min_rounds, max_rounds)
            finally:
                for w in workers:
                    w.close()
    return outcomes


def _counting_env(tmp: Path) -> dict[str, str]:
    """The counting workers' variables; builds the shim and copies its module beside the
    worker script (see :mod:`.serve`)."""
    shutil.copy(Path(__file__).with_name("instructions.py"), tmp / "gate_instructions.py")
    try:
        shim = instructions.build_shim(tmp)
    except RuntimeError as exc:
        raise GateError(str(exc)) from None
    return {**instructions.worker_env(), instructions.SHIM_ENV: str(shim),
            instructions.OUT_ENV: str(tmp / "callgrind")}


def _ready_cases(workers, keys, scale) -> tuple[list[CaseOutcome], list[CaseOutcome]]:
    """All outcomes of a group, and those both revisions set up (the rest judged unready)."""
    out, live = [], []
    for key in keys:
        o = CaseOutcome(key, scale)
        status = [w.ready.get(key, {"ok": False, "kind": "error", "reason": "no reply"})
                  for w in workers]
        if all(s.get("ok") for s in status):
            live.append(o)
        else:
            o.broken, o.note = judge_unready(*status)
        out.append(o)
    return out, live


def _count_group(workers, keys, scale, threshold):
    wb, wh = workers
    out, live = _ready_cases(workers, keys, scale)
    for o in live:
        for r in range(COUNTED_CALLS):
            for w in ((wb, wh) if r % 2 == 0 else (wh, wb)):  # ABBA
                (o.base_ir if w is wb else o.head_ir).append(w.count(o.key))
        o.decision = decide_counts(o.base_ir, o.head_ir, threshold)
        spread = [f"{side} {max(c) / min(c) - 1:.2%}" for side, c in
                  (("base", o.base_ir), ("head", o.head_ir)) if max(c) > min(c) * (1 + SPREAD_NOTE)]
        if spread:
            o.note = "counts differ between calls: " + ", ".join(spread)
    return out


def _time_group(workers, keys, scale, deadline, threshold, min_rounds, max_rounds):
    wb, wh = workers
    out, live = _ready_cases(workers, keys, scale)
    r = 0
    while live and r < max_rounds:
        if r >= min_rounds and time.monotonic() > deadline:
            break
        for o in list(live):
            first, second = (wb, wh) if r % 4 in (0, 3) else (wh, wb)  # ABBA
            t1, t2 = first.round(o.key)["t"], second.round(o.key)["t"]
            o.base_s.append(t1 if first is wb else t2)
            o.head_s.append(t2 if first is wb else t1)
            if r + 1 >= min_rounds:
                o.decision = decide(o.base_s, o.head_s, threshold)
                if o.decision.verdict != "undecided":
                    live.remove(o)
        r += 1
    for o in live:
        stop = "time budget spent before a decision" if r < max_rounds else "max rounds"
        o.note = f"{stop}; {rounds_needed_text(o, threshold)}"
    return out


NEED_MARGIN = 3.0
"""The width rule alone underestimates: the ratio itself moves as rounds come in, and in
simulations (tests/test_gate.py) 1.5x the rule decided half the undecided cases, 3x about 80 %."""


def rounds_needed(d: Decision, threshold: float) -> float | None:
    """Paired rounds an undecided case would need for a verdict at the noise seen so far:
    :data:`NEED_MARGIN` times what the interval's width (shrinking as 1 / sqrt(rounds)) needs
    to clear 1 on the side of a ratio beyond the threshold (slower / faster) or to fit inside
    the band (same); None when the ratio sits on the threshold, where no number of rounds
    decides."""
    half = (math.log(d.hi) - math.log(d.lo)) / 2
    band = math.log(1 + threshold)
    dist = abs(math.log(d.ratio))
    room = dist if dist > band else band - dist  # beyond the band: clear 1; inside: stay in
    if half <= 0:
        return float(d.rounds)
    if room <= 0.02 * band:
        return None
    return NEED_MARGIN * d.rounds * (half / room) ** 2


def rounds_needed_text(o: CaseOutcome, threshold: float) -> str:
    d = o.decision
    if d is None:
        return "no paired rounds"
    need = rounds_needed(d, threshold)
    if need is None:
        return "its ratio sits on the threshold: no budget decides it"
    per_round = (float(np.median(o.base_s)) + float(np.median(o.head_s)))
    return (f"at this noise it needs about {math.ceil(need)} rounds, ~{need * per_round:.0f} s "
            "of timed calls for this case (--budget, --max-rounds)")


def judge_unready(base: dict, head: dict) -> tuple[bool, str]:
    """``(broken, note)`` of a case one revision could not set up (``ready`` entries of
    :mod:`.serve`)."""
    def side(name: str, s: dict) -> str:
        return f"{name}: {s.get('reason', '')}"

    failed = [side(n, s) for n, s in (("base", base), ("head", head)) if s.get("kind") == "error"]
    if failed:
        return True, "BROKEN: " + "; ".join(failed)
    if base.get("ok") and head.get("kind") == "absent":
        return True, "BROKEN: head lost a case base runs (" + side("head", head) + ")"
    why = [side(n, s) for n, s in (("base", base), ("head", head)) if not s.get("ok")]
    return False, "not compared: " + "; ".join(why)


def gate_failed(outcomes: list[CaseOutcome]) -> bool:
    """Exit status 1: a slower or broken case, or nothing compared (see the docstring)."""
    judged = [o for o in outcomes if o.decision is not None]
    return (not judged or any(o.broken for o in outcomes)
            or any(o.decision.verdict == "slower" for o in judged))


def format_gate(outcomes: list[CaseOutcome], base: str, head: str, threshold: float,
                metric: str = "time") -> str:
    if metric == "instructions":
        return format_counts(outcomes, base, head, threshold)
    lines = [f"gate: head {head} vs base {base}, threshold {threshold:.0%}, 95 % paired "
             "bootstrap intervals of head/base (> 1: head slower)",
             f"{'case':42s} {'scale':5s} {'rounds':>6s} {'head/base':>9s} {'95 % CI':>17s} "
             f"{'p(not slower)':>13s}  verdict"]
    for o in outcomes:
        d = o.decision
        if d is None:
            lines.append(f"{o.key:42s} {o.scale:5s} {'-':>6s} {'-':>9s} {'-':>17s} {'-':>13s}  "
                         f"{o.note}")
            continue
        lines.append(f"{o.key:42s} {o.scale:5s} {d.rounds:6d} {d.ratio:9.3f} "
                     f"[{d.lo:7.3f}, {d.hi:7.3f}] {d.p_not_slower:13.3f}  {d.verdict.upper()}"
                     + (f" ({o.note})" if o.note else ""))
    slower = [o for o in outcomes if o.decision and o.decision.verdict == "slower"]
    lines.append(f"{len(slower)} case(s) significantly slower by more than {threshold:.0%}"
                 if slower else "no case significantly slower")
    return "\n".join(lines + _failure_lines(outcomes))


def format_counts(outcomes: list[CaseOutcome], base: str, head: str, threshold: float) -> str:
    """The table of ``metric="instructions"``: median instructions per call on each side."""
    lines = [f"gate: head {head} vs base {base}, instructions per timed call (callgrind, "
             f"{COUNTED_CALLS} calls each side), threshold {threshold:.1%} (> 1: head does more)",
             f"{'case':42s} {'scale':5s} {'base instr':>15s} {'head instr':>15s} "
             f"{'head/base':>9s}  verdict"]
    for o in outcomes:
        d = o.decision
        if d is None:
            lines.append(f"{o.key:42s} {o.scale:5s} {'-':>15s} {'-':>15s} {'-':>9s}  {o.note}")
            continue
        b, h = np.median(o.base_ir), np.median(o.head_ir)
        lines.append(f"{o.key:42s} {o.scale:5s} {b:15,.0f} {h:15,.0f} {d.ratio:9.4f}  "
                     f"{d.verdict.upper()}" + (f" ({o.note})" if o.note else ""))
    slower = [o for o in outcomes if o.decision and o.decision.verdict == "slower"]
    lines.append(f"{len(slower)} case(s) do more than {threshold:.1%} more instructions"
                 if slower else f"no case does more than {threshold:.1%} more instructions")
    return "\n".join(lines + _failure_lines(outcomes))


def _failure_lines(outcomes: list[CaseOutcome]) -> list[str]:
    lines = []
    broken = [o for o in outcomes if o.broken]
    if broken:
        lines.append(f"{len(broken)} case(s) broken: a revision cannot run them (gate fails)")
    if not any(o.decision for o in outcomes):
        lines.append("no case compared: nothing to judge (gate fails)")
    return lines
