"""``gate --metric instructions``: count the CPU instructions of each timed call under valgrind.

The gate runs its workers under callgrind with instrumentation off
(:func:`valgrind_command`), so start-up, imports and set-up run uninstrumented and count
nothing. A tiny C shim (:data:`SHIM_SOURCE`, built by :func:`build_shim` with the system ``cc``
and valgrind's ``callgrind.h``) gives the worker callgrind's client requests: :class:`Counter`
zeroes the counters and starts instrumentation just before the timed call, stops it just after
and dumps the counts to a file, whose instruction total (``Ir``) :func:`read_total` reads.
Outside valgrind the client requests are no-ops.

Workers run numba with a generic CPU target and every thread pool at one thread
(:data:`WORKER_ENV`): valgrind's virtual CPU reports other features than the host, so host-tuned
code would be recompiled (minutes) and could use instructions valgrind lacks; one thread makes
the count the single-threaded work.

Standard library only: the gate copies this file beside its worker script, which imports it
when run against any revision's code.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

SHIM_ENV = "RECSYS_FAST_GATE_SHIM"
"""Path of the built shim; set in a worker's environment, it makes each round count."""
OUT_ENV = "RECSYS_FAST_GATE_CALLGRIND_OUT"
"""The ``--callgrind-out-file`` prefix, so the worker finds its dumps."""

INSTALL_HINT = "install it with `sudo apt-get install valgrind`"
HEADER = "valgrind/callgrind.h"
INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))

WORKER_ENV = {
    "NUMBA_CPU_NAME": "generic",  # numba then also sets no CPU features: one cache key both ways
    "NUMBA_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",  # the same dict and set orders in every worker
    # cosine_topk's auto decides by a timed trial, which valgrind's slowdown sends to dense:
    # pin the sparse kernel, auto's choice natively on rating data (unless the caller set one)
    "RECSYS_FAST_TOPK_AUTO": "sparse",
}


def worker_env() -> dict[str, str]:
    """:data:`WORKER_ENV` (``RECSYS_FAST_TOPK_AUTO`` as the caller set it, if set), plus
    ``OPENBLAS_CORETYPE=Haswell`` on a host with AVX2: OpenBLAS
    then runs the same kernels natively and under valgrind (whose virtual CPU it reads as
    Haswell), so the cached cost-model calibration of ``cosine_topk`` (keyed by BLAS
    architecture) measured natively is the one read under valgrind."""
    env = dict(WORKER_ENV)
    if os.environ.get("RECSYS_FAST_TOPK_AUTO"):
        env["RECSYS_FAST_TOPK_AUTO"] = os.environ["RECSYS_FAST_TOPK_AUTO"]
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx2" in flags and "OPENBLAS_CORETYPE" not in os.environ:
        env["OPENBLAS_CORETYPE"] = "Haswell"
    return env

SHIM_SOURCE = r"""
#include <valgrind/callgrind.h>

int rf_running_on_valgrind(void) { return RUNNING_ON_VALGRIND; }

void rf_start(void) {
    CALLGRIND_ZERO_STATS;
    CALLGRIND_START_INSTRUMENTATION;
}

void rf_stop(const char *name) {
    CALLGRIND_STOP_INSTRUMENTATION;
    CALLGRIND_DUMP_STATS_AT(name);
}
"""


def find_header() -> Path | None:
    """The folder holding ``valgrind/callgrind.h``, or None."""
    for d in INCLUDE_DIRS:
        if (d / HEADER).is_file():
            return d
    return None


def unavailable() -> str | None:
    """Why instruction counting cannot run here (one line), or None when it can."""
    if shutil.which("valgrind") is None:
        return f"valgrind not found: {INSTALL_HINT}"
    if find_header() is None:
        return (f"valgrind's header {HEADER} not found under "
                f"{', '.join(map(str, INCLUDE_DIRS))}: {INSTALL_HINT}")
    if shutil.which("cc") is None:
        return "no C compiler (cc) found to build the callgrind shim: install build-essential"
    return None


def build_shim(folder: Path) -> Path:
    """Compile the shim into ``folder``; RuntimeError with the compiler's message on failure."""
    src, lib = folder / "callgrind_shim.c", folder / "callgrind_shim.so"
    src.write_text(SHIM_SOURCE)
    cmd = ["cc", "-O2", "-shared", "-fPIC", f"-I{find_header() or INCLUDE_DIRS[0]}",
           "-o", str(lib), str(src)]
    try:
        subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"building the callgrind shim failed ({' '.join(cmd)}): "
                           f"{exc.stderr.strip()}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"building the callgrind shim failed ({' '.join(cmd)}): {exc}") from None
    return lib


def valgrind_command(out_prefix: Path) -> list[str]:
    """The command prefix that runs a worker under callgrind, counting nothing until asked.
    Dumps go to ``<out_prefix>.<pid>.<n>``."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no", "-q",
            f"--callgrind-out-file={out_prefix}.%p"]


def read_total(path: Path) -> int:
    """The instruction count (``Ir``) of one callgrind output file: its ``totals:`` line, else
    its ``summary:`` line; ValueError naming the file when it has neither."""
    events, found = ["Ir"], {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key == "events":
                events = rest.split()
            elif key in ("totals", "summary"):
                found[key] = rest.split()
    counts = found.get("totals") or found.get("summary")
    if counts is None or "Ir" not in events:
        raise ValueError(f"{path}: no totals: or summary: line with an Ir count")
    i = events.index("Ir")
    return int(counts[i]) if i < len(counts) else 0


class Counter:
    """Counts the instructions of one call at a time in a worker run under
    :func:`valgrind_command` (see the module docstring)."""

    def __init__(self, shim: str, out_prefix: str):
        self._lib = ctypes.CDLL(shim)
        self._lib.rf_stop.argtypes = [ctypes.c_char_p]
        self._prefix = out_prefix
        self._dumps = 0
        self.on_valgrind = bool(self._lib.rf_running_on_valgrind())

    def start(self) -> None:
        self._lib.rf_start()

    def stop(self, name: str) -> None:
        """Stop counting and dump the counts since :meth:`start` (``name`` labels the dump)."""
        self._lib.rf_stop(name.encode())
        self._dumps += 1

    def total(self) -> int | None:
        """The instruction count of the last dump (its file is then removed); None outside
        valgrind, where the client requests do nothing."""
        if not self.on_valgrind:
            return None
        path = Path(f"{self._prefix}.{os.getpid()}.{self._dumps}")
        try:
            return read_total(path)
        finally:
            path.unlink(missing_ok=True)
