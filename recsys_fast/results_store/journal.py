"""The run journal: every finished case on disk at once, so nothing measured is ever lost.

A run named ``<UTC time>-<random>`` (unique: created with ``O_EXCL``, so concurrent runs into one
folder never collide) appends one JSON line per event to
``<out>/<machine-id>/<run>.partial.jsonl``, each followed by ``fsync``:

``header``      machine, software, GEMM peak and bandwidth, git state, settings, selection
``data``        where a scale's data came from, and its shape
``row``         one finished case (a results-file case row)
``group_done``  every case of a (kernel, scale) group is in: its ratios are same-worker
``interrupted`` SIGINT / SIGTERM: the rows above stay; ``recsys-fast bench --resume RUN``
``write_failed`` the final results file could not be written (full disk...)

At the end the results file ``<run>.json`` is assembled from the journal and written atomically
and without overwriting; then the journal is removed. A resumed run keeps the groups that
finished and re-runs the others in full (a group's ratios always come from one sitting).
A torn last line (the process died mid-write) is ignored; any other bad line is an error.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from recsys_fast.errors import DataFormatError, RecsysFastError

SUFFIX = ".partial.jsonl"


class JournalError(RecsysFastError, OSError):
    """The journal cannot be created, written or found."""


def run_name(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class Journal:
    """Append-only, fsync'ed JSON lines; see the module docstring."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run(self) -> str:
        return self.path.name.removesuffix(SUFFIX)

    @classmethod
    def create(cls, folder: Path, header: dict) -> Journal:
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            name = run_name()
            path = folder / f"{name}{SUFFIX}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            j = cls(path)
            j.append({"type": "header", "run": name, **header})
            return j
        raise JournalError(f"could not create a unique run journal in {str(folder)!r}")

    @classmethod
    def find(cls, out_dir: Path, run: str) -> Journal:
        """The journal of ``run`` (a run name, or a path to its ``.partial.jsonl``)."""
        p = Path(run)
        if p.name.endswith(SUFFIX) and p.is_file():
            return cls(p)
        name = p.name.removesuffix(SUFFIX).removesuffix(".json")
        if not name or "/" in name or name.startswith("."):
            raise JournalError(f"not a run name: {run!r}")
        hits = sorted(Path(out_dir).glob(f"*/{name}{SUFFIX}"))
        if not hits:
            done = sorted(Path(out_dir).glob(f"*/{name}.json"))
            if done:
                raise JournalError(f"run {name} is already complete: {done[0]}")
            raise JournalError(f"no unfinished run {name!r} under {str(out_dir)!r} "
                               f"(looked for */{name}{SUFFIX})")
        return cls(hits[0])

    @property
    def torn_path(self) -> Path:
        """Where a torn last line is kept when it is cut off (``<journal>.torn``)."""
        return self.path.with_name(self.path.name + ".torn")

    def torn_tail(self) -> bytes:
        """The last line when it lacks its newline and is not a whole event (b"" otherwise):
        what the next :meth:`append` cuts off and keeps in :attr:`torn_path`."""
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return b""
        tail = data[data.rfind(b"\n") + 1:]
        return b"" if _is_event(tail) else tail

    def append(self, event: dict) -> None:
        """Write one line and fsync it; OSError (full disk...) propagates to the caller.

        A last line without its newline (a writer killed mid-line, a full disk) is dealt with
        first, else the new line would continue it: a complete event missing only its newline
        gets the newline; a fragment is cut off and kept, appended to :attr:`torn_path`."""
        line = json.dumps(event, separators=(",", ":"), default=_jsonable) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                text = os.pread(fd, size, 0)
                start = text.rfind(b"\n") + 1
                if _is_event(text[start:]):
                    os.write(fd, b"\n")
                else:
                    with open(self.torn_path, "ab") as kept:
                        kept.write(text[start:] + b"\n")
                    os.ftruncate(fd, start)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> list[dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror or exc}") from None
        lines = text.split("\n")
        out = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as exc:
                if n == len(lines) or (n == len(lines) - 1 and not lines[-1]):
                    break  # a torn last line: the writer died mid-line
                raise DataFormatError(f"bad journal line: {exc.msg}", self.path, n) from None
            if not isinstance(ev, dict) or "type" not in ev:
                raise DataFormatError("journal line is not an event object", self.path, n)
            out.append(ev)
        if not out or out[0]["type"] != "header":
            raise DataFormatError("journal has no header line", self.path, 1)
        return out

    def state(self) -> JournalState:
        return JournalState(self.events())


def _is_event(raw: bytes) -> bool:
    try:
        ev = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(ev, dict) and "type" in ev


class JournalState:
    """What a journal holds: header, data sources, rows of completed groups."""

    def __init__(self, events: list[dict]):
        self.header = events[0]
        self.data: dict[str, dict] = {}
        rows: dict[tuple[str, str], list[dict]] = {}
        self.done: set[tuple[str, str]] = set()
        self.interruptions = 0
        for ev in events[1:]:
            t = ev["type"]
            if t == "data":
                self.data[ev["scale"]] = ev
            elif t == "row":
                r = ev["row"]
                g = (r["kernel"], r["scale"])
                if g in self.done:  # a re-run of a finished group cannot happen; ignore
                    continue
                rows.setdefault(g, []).append(r)
            elif t == "group_start":
                rows[(ev["kernel"], ev["scale"])] = []  # a new sitting replaces partial rows
            elif t == "group_done":
                self.done.add((ev["kernel"], ev["scale"]))
            elif t == "interrupted":
                self.interruptions += 1
        self.rows = [r for g, rs in rows.items() if g in self.done for r in rs]


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
