"""One worker process per (kernel, scale) group: a crash, an OOM kill or a hang costs one case.

The worker is forked from the run's process, so it shares the scale's data (loaded once by the
parent, before the fork) copy-on-write and gets the registry's cases (closures included) without
pickling. It runs :func:`~recsys_fast.harness.runner.run_group` and reports over a pipe: before
each stage ``("stage", key, stage)``, then each final row ``("row", dict)``. The parent enforces
``case_timeout`` per stage; when the worker dies (signal, exit) or times out, the case it was in
is recorded as an error naming the signal or the limit, and the group's unfinished cases run
again in a fresh worker (their rows then carry another ``worker`` id, so their ratios are not
paired with the first worker's).

The parent never initialises CUDA or BLAS thread pools itself (the machine probe also runs in a
worker), so forking stays safe. Workers ignore SIGINT: Ctrl-C reaches the parent, which stops
the worker; no interrupt is ever recorded as a case error.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from recsys_fast.harness.context import CaseContext
from recsys_fast.harness.registry import Case
from recsys_fast.harness.runner import CaseResult, RunSettings, run_group

EXIT_WORKER_FAILED = 70  # the worker's own machinery failed (not a case)


def fork_available() -> bool:
    return "fork" in mp.get_all_start_methods()


def _worker_main(conn, cases: list[Case], scale: str, ctx: CaseContext, settings: RunSettings,
                 worker: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        run_group(cases, scale, ctx, settings, worker=worker,
                  emit=lambda r: conn.send(("row", r.to_dict())),
                  notify=lambda key, stage: conn.send(("stage", key, stage)))
        conn.send(("done",))
    except BaseException:  # noqa: BLE001 - report, then exit non-zero
        try:
            conn.send(("fatal", traceback.format_exc(limit=5)))
        except OSError:
            pass
        os._exit(EXIT_WORKER_FAILED)
    finally:
        conn.close()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _death_text(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        name = _signal_name(exitcode)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {exitcode}"


def call_in_worker(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn()`` in a forked process and return its (picklable) result; raises
    ``RuntimeError`` when it fails, dies or exceeds ``timeout`` seconds."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            send.send(("ok", fn()))
        except BaseException:  # noqa: BLE001
            send.send(("error", traceback.format_exc(limit=3)))
        finally:
            send.close()

    proc = ctx.Process(target=target, daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise RuntimeError(f"timed out after {timeout:g} s")
        kind, value = recv.recv()
    except EOFError:
        proc.join(5)
        raise RuntimeError(_death_text(proc.exitcode)) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        recv.close()
    if kind != "ok":
        raise RuntimeError(value.strip().splitlines()[-1])
    return value


class GroupRunner:
    """Runs groups in worker processes; ``on_row(row_dict)`` gets every final row at once.

    ``stop()`` (from a signal handler or another thread) kills the current worker.
    """

    def __init__(self, settings: RunSettings, on_row: Callable[[dict], None],
                 on_stage: Callable[[str, str], None] | None = None):
        self.settings = settings
        self.on_row = on_row
        self.on_stage = on_stage or (lambda key, stage: None)
        self._proc = None
        self._n = 0

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

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
                if todo:  # the worker ended cleanly without reporting them: never silent
                    why = why or "worker ended without reporting this case"
                    for c in todo:
                        rows.append(self._error_row(c, scale, why))
                break
            rows.append(self._error_row(culprit[0], scale, f"{culprit[1]}: {why}"))
            todo = [c for c in todo if c is not culprit[0]]
        return rows

    def _error_row(self, case: Case, scale: str, text: str) -> dict:
        res = CaseResult(case.kernel, case.impl, case.backend, scale, status="error", error=text,
                         worker=f"w{self._n}")
        row = res.to_dict()
        self.on_row(row)
        return row

    def _attempt(self, cases: list[Case], scale: str, ctx: CaseContext
                 ) -> tuple[list[dict], tuple[Case, str] | None, str | None]:
        """One worker over ``cases``: (rows reported, (case, stage) it died in or None, why)."""
        self._n += 1
        worker = f"w{os.getpid()}-{self._n}"
        mpctx = mp.get_context("fork")
        recv, send = mpctx.Pipe(duplex=False)
        proc = mpctx.Process(target=_worker_main, daemon=True,
                             args=(send, cases, scale, ctx, self.settings, worker))
        self._proc = proc
        proc.start()
        send.close()
        by_key = {c.key: c for c in cases}
        rows: list[dict] = []
        current: tuple[Case, str] | None = None
        deadline = time.monotonic() + self.settings.case_timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    proc.join(10)
                    return rows, current or (cases[0], "start"), (
                        f"timed out after {self.settings.case_timeout:g} s (case_timeout)")
                try:
                    ready = recv.poll(min(left, 1.0))
                    msg = recv.recv() if ready else None
                except (EOFError, OSError):
                    proc.join(10)
                    if current is None:
                        return rows, None, _death_text(proc.exitcode)
                    return rows, current, _death_text(proc.exitcode)
                if msg is None:
                    if not proc.is_alive() and not recv.poll(0):
                        proc.join(1)
                        return rows, current or (cases[0], "start"), _death_text(proc.exitcode)
                    continue
                kind = msg[0]
                if kind == "stage":
                    current = (by_key[msg[1]], msg[2])
                    deadline = time.monotonic() + self.settings.case_timeout
                    self.on_stage(msg[1], msg[2])
                elif kind == "row":
                    rows.append(msg[1])
                    self.on_row(msg[1])
                    current = None
                elif kind == "done":
                    proc.join(30)
                    return rows, None, None
                elif kind == "fatal":
                    proc.join(10)
                    last = msg[1].strip().splitlines()[-1]
                    if current is None:
                        return rows, None, f"worker failed: {last}"
                    return rows, current, f"worker failed: {last}"
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(10)
            recv.close()
            self._proc = None
