"""One worker process per (kernel, scale) group: a crash, an OOM kill or a hang costs one case.

Each worker is a fresh interpreter (``python -m recsys_fast.harness.run.worker``), as asv runs each
benchmark: nothing the parent did (BLAS or OpenMP thread pools, a CUDA context, TensorFlow) can
leak into it, and the measurement starts from the same state every time. The parent builds the
scale's data once and hands it over as a pickle file; the worker rebuilds the registry from its
factory (``Registry.factory``, ``"module:function"``) and runs
:func:`~recsys_fast.harness.run.runner.run_group`, reporting JSON lines on a dedicated pipe: before
each stage ``{"stage": [key, stage]}``, then each final row ``{"row": {...}}``. A case's
``worker_env`` (variables that must be set before a library is imported, e.g.
``TF_USE_LEGACY_KERAS``) is merged into its worker's environment and recorded in the rows'
``extra``.

The parent enforces ``case_timeout`` per stage. When the worker dies (signal, exit) or times
out, the case it was in is recorded as an error naming the signal or the limit, and the group's
unfinished cases run again in a fresh worker (their rows carry another ``worker`` id, so their
ratios are not paired with the first worker's). Workers run in their own session: Ctrl-C
reaches only the parent, which stops the worker; an interrupt is never a case error.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from recsys_fast.harness.cases.registry import Case, Registry
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.runner import CaseResult, RunSettings


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def death_text(returncode: int | None) -> str:
    if returncode is None:
        return "worker vanished"
    if returncode < 0:
        name = _signal_name(returncode)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {returncode}"


def _child_env(extra: dict[str, str] | None = None) -> dict:
    """The parent's environment, with its ``sys.path`` so test registries import too, and
    ``extra`` (the group's :func:`group_env`) on top."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


def group_env(cases: list[Case]) -> dict[str, str]:
    """The union of the cases' ``worker_env``; ``ValueError`` when two cases disagree."""
    env: dict[str, str] = {}
    owner: dict[str, str] = {}
    for case in cases:
        for name, value in case.worker_env.items():
            if env.setdefault(name, value) != value:
                raise ValueError(f"{case.key} needs {name}={value!r} but {owner[name]} needs "
                                 f"{name}={env[name]!r}: they cannot share a worker")
            owner.setdefault(name, case.key)
    return env


def call_python(fn: str, timeout: float, **kwargs) -> object:
    """Run ``module:function(**kwargs)`` in a fresh interpreter and return its JSON result
    (the machine probe runs this way); ``RuntimeError`` when it fails, dies or times out."""
    with tempfile.TemporaryDirectory(prefix="recsys-call-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "recsys_fast.harness.run.worker", "call", fn, str(out),
               json.dumps(kwargs)]
        try:
            proc = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True,
                                  timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{fn} timed out after {timeout:g} s") from None
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [death_text(proc.returncode)]
            raise RuntimeError(f"{fn} failed: {tail[0]}")
        return json.loads(out.read_text())


class GroupRunner:
    """Runs groups in worker processes; ``on_row(row_dict)`` gets every final row at once and
    ``on_stage(key, stage)`` each stage as it starts. ``stop()`` kills the current worker."""

    def __init__(self, registry: Registry, settings: RunSettings,
                 on_row: Callable[[dict], None],
                 on_stage: Callable[[str, str], None] | None = None,
                 workdir: Path | None = None):
        if not registry.factory:
            raise ValueError("isolated runs need Registry.factory ('module:function') so a "
                             "worker can rebuild the registry")
        self.registry = registry
        self.settings = settings
        self.on_row = on_row
        self.on_stage = on_stage or (lambda key, stage: None)
        self._tmp = tempfile.TemporaryDirectory(prefix="recsys-bench-", dir=workdir)
        self.workdir = Path(self._tmp.name)
        self._proc: subprocess.Popen | None = None
        self._data_files: dict[str, Path] = {}
        self._n = 0
        self._worker = ""  # the current (or last) worker's id, as its rows record it

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()

    def share(self, ctx: CaseContext, scale: str) -> None:
        """Write the scale's data (built once, here) for the workers of that scale."""
        path = self.workdir / f"data-{scale}.pkl"
        with open(path, "wb") as fh:
            pickle.dump({"interactions": ctx.interactions(scale),
                         "source": ctx.data_sources.get(scale)}, fh, protocol=5)
        for old in self._data_files.values():
            old.unlink(missing_ok=True)
        self._data_files = {scale: path}

    def run(self, cases: list[Case], scale: str, ctx: CaseContext) -> list[dict]:
        """All rows of the group (one per case, in the order they finished)."""
        rows: list[dict] = []
        todo = list(cases)
        while todo:
            finished, culprit, why = self._attempt(todo, scale, ctx)
            rows += finished
            done = {(r["kernel"], r["impl"], r["backend"]) for r in finished}
            todo = [c for c in todo if (c.kernel, c.impl, c.backend) not in done]
            if culprit is None:
                for c in todo:  # a worker that ended without reporting a case: never silent
                    rows.append(self._error_row(c, scale, why or "worker ended without "
                                                "reporting this case"))
                break
            rows.append(self._error_row(culprit[0], scale, f"{culprit[1]}: {why}"))
            todo = [c for c in todo if c is not culprit[0]]
        return rows

    def _error_row(self, case: Case, scale: str, text: str) -> dict:
        row = CaseResult(case.kernel, case.impl, case.backend, scale, status="error",
                         error=text, worker=self._worker).to_dict()
        self.on_row(row)
        return row

    def _job(self, cases: list[Case], scale: str, ctx: CaseContext, worker: str) -> Path:
        job = {"factory": self.registry.factory, "keys": [c.key for c in cases],
               "scale": scale, "settings": asdict(self.settings), "worker": worker,
               "data_file": str(self._data_files.get(scale) or ""),
               "ml100k": str(ctx.ml100k) if ctx.ml100k else None, "seed": ctx.seed,
               "budget": ctx._budget, "shape": ctx.shape}
        path = self.workdir / f"job-{worker}.json"
        path.write_text(json.dumps(job))
        return path

    def _attempt(self, cases: list[Case], scale: str, ctx: CaseContext
                 ) -> tuple[list[dict], tuple[Case, str] | None, str | None]:
        """One worker over ``cases``: (rows reported, (case, stage) it died in or None, why)."""
        extra_env = group_env(cases)  # before anything starts: a conflict is a registry bug
        self._n += 1
        worker = self._worker = f"w{os.getpid()}-{self._n}"
        job = self._job(cases, scale, ctx, worker)
        rfd, wfd = os.pipe()
        cmd = [sys.executable, "-m", "recsys_fast.harness.run.worker", "group", str(job), str(wfd)]
        # the worker's output (library start-up chatter, tracebacks) goes to a log; its last
        # line is quoted when the worker dies
        log = self.workdir / f"{worker}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, env=_child_env(extra_env), pass_fds=(wfd,),
                                    start_new_session=True, stdout=fh, stderr=subprocess.STDOUT)
        os.close(wfd)
        self._proc = proc
        by_key = {c.key: c for c in cases}
        rows: list[dict] = []
        current: tuple[Case, str] | None = None
        deadline = time.monotonic() + self.settings.case_timeout
        buf = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    proc.wait()
                    return rows, current or (cases[0], "start"), (
                        f"timed out after {self.settings.case_timeout:g} s (case timeout)")
                ready, _, _ = select.select([rfd], [], [], min(left, 1.0))
                if not ready:
                    continue
                chunk = os.read(rfd, 1 << 16)
                if not chunk:  # the worker closed the pipe: it ended or died
                    proc.wait()
                    if proc.returncode == 0 and current is None:
                        return rows, None, None
                    if proc.returncode == 0:
                        return rows, current, "worker ended mid-case"
                    return rows, current or (cases[0], "start"), (
                        death_text(proc.returncode) + _last_line(log))
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    msg = json.loads(line)
                    if "stage" in msg:
                        key, stage = msg["stage"]
                        current = (by_key[key], stage)
                        deadline = time.monotonic() + self.settings.case_timeout
                        self.on_stage(key, stage)
                    elif "row" in msg:
                        if extra_env:  # what the worker ran under, for every row it reports
                            msg["row"].setdefault("extra", {})["worker_env"] = extra_env
                        rows.append(msg["row"])
                        self.on_row(msg["row"])
                        current = None
                    elif "fatal" in msg:
                        proc.wait()
                        why = f"worker failed: {msg['fatal']}"
                        return rows, current, why
        finally:
            self.stop()
            if proc.poll() is None:
                proc.wait()
            os.close(rfd)
            self._proc = None
            job.unlink(missing_ok=True)
            log.unlink(missing_ok=True)


def _last_line(log: Path) -> str:
    """``; last output: ...`` from a dead worker's log (TensorFlow's start-up lines skipped)."""
    from recsys_fast.harness.run.runner import scrub_paths

    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    lines = [ln for ln in lines if ln.strip() and not ln.startswith(("I0000", "W0000", "E0000",
                                                                     "WARNING: All log"))]
    return f"; last output: {scrub_paths(lines[-1].strip())[:200]}" if lines else ""
