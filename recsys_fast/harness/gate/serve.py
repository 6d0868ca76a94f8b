"""Gate worker: serves timed calls of one group's cases for :mod:`~recsys_fast.harness.gate`.

Not imported by the package: ``gate`` copies this file to a temp folder and runs it with
``PYTHONPATH`` set to one revision's checkout, so ``recsys_fast`` below is *that revision's*
code. It therefore uses only the registry API every revision has (``default_registry()``,
``cases_by_key``, ``Case.setup(ctx, scale)``, ``Case.run(state)``, ``CaseContext(registry)``).

Protocol (JSON lines): argv = keys (JSON list), scale. The worker sets up each case and calls it
once (warm-up), then prints ``{"ready": {key: {"ok": true} | {"ok": false, "kind": ...,
"reason": ...}}}``; ``kind`` is ``absent`` (not registered, or not at this scale), ``skip`` (an
optional package the case requires is missing) or ``error`` (setup or the first call raised).
Each ``{"round": key}`` line on stdin gets ``{"t": seconds}`` (or ``{"error": ...}``);
``{"quit": true}`` or end of input ends it. Library output goes to stderr.

Instruction counts (``gate --metric instructions``): when ``RECSYS_FAST_GATE_SHIM`` names the
built callgrind shim, the worker (run under valgrind by the gate) imports ``gate_instructions``,
the gate's copy of :mod:`~recsys_fast.harness.gate.instructions` beside this script, and each
reply also carries ``"instructions": N``, counted around the timed call only.
"""

import gc
import importlib.util
import json
import os
import sys
import time
import traceback


def _missing(case) -> list:
    """The optional packages ``case`` requires that cannot be found here."""
    out = []
    for name in getattr(case, "requires", ()) or ():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr, not into the protocol
    keys, scale = json.loads(sys.argv[1]), sys.argv[2]
    try:
        from recsys_fast.harness.cases.registry import default_registry
        from recsys_fast.harness.run.context import CaseContext
    except ImportError:  # a revision from before the harness was split by concern
        from recsys_fast.harness.context import CaseContext
        from recsys_fast.harness.registry import default_registry

    counter = None
    if os.environ.get("RECSYS_FAST_GATE_SHIM"):  # instructions.SHIM_ENV
        from gate_instructions import Counter  # copied beside this script by the gate

        counter = Counter(os.environ["RECSYS_FAST_GATE_SHIM"],
                          os.environ["RECSYS_FAST_GATE_CALLGRIND_OUT"])  # instructions.OUT_ENV

    reg = default_registry()
    ctx = CaseContext(reg)
    states, ready = {}, {}
    for key in keys:
        case = reg.cases_by_key.get(key)
        if case is None:
            ready[key] = {"ok": False, "kind": "absent",
                          "reason": "not registered in this revision"}
            continue
        if scale not in getattr(case, "scales", (scale,)):
            ready[key] = {"ok": False, "kind": "absent", "reason": f"not defined at scale {scale}"}
            continue
        missing = _missing(case)
        if missing:
            ready[key] = {"ok": False, "kind": "skip",
                          "reason": f"optional package {', '.join(missing)} not installed"}
            continue
        try:
            state = case.setup(ctx, scale)
            case.run(state)  # warm-up: compilation, caches
            states[key] = (case, state)
            ready[key] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported; the gate fails the case
            ready[key] = {"ok": False, "kind": "error",
                          "reason": f"{type(exc).__name__}: {exc}"[:300]}
    proto.write(json.dumps({"ready": ready}) + "\n")
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        case, state = states[msg["round"]]
        try:
            if counter is not None:
                gc.collect()  # no collection of earlier garbage inside the count
            t0 = time.perf_counter()
            if counter is not None:
                counter.start()
            case.run(state)
            if counter is not None:
                counter.stop(msg["round"])
            reply = {"t": time.perf_counter() - t0}
            if counter is not None:
                reply["instructions"] = counter.total()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
