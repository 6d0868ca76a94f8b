"""Worker entry point (``python -m recsys_fast.harness.run.worker``), started by
:mod:`~recsys_fast.harness.run.workers`; not a user command.

``group JOB_JSON FD``: run the job's cases (one group) and write JSON lines to file descriptor
``FD``. ``call MODULE:FUNCTION OUT_JSON KWARGS_JSON``: write ``function(**kwargs)`` as JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import sys
import traceback


def _resolve(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _group(job_path: str, fd: int) -> int:
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.harness.run.runner import RunSettings, run_group

    out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(msg: dict) -> None:
        out.write(json.dumps(msg, allow_nan=False) + "\n")
        out.flush()

    try:
        with open(job_path, encoding="utf-8") as fh:
            job = json.load(fh)
        registry = _resolve(job["factory"])()
        cases = [registry.cases_by_key[k] for k in job["keys"]]
        ctx = CaseContext(registry, ml100k=job["ml100k"], seed=job["seed"],
                          budget=job["budget"], shape=job.get("shape", "default"))
        scale = job["scale"]
        if job["data_file"]:
            with open(job["data_file"], "rb") as fh:
                shared = pickle.load(fh)
            ctx.memo((scale, "interactions"), lambda: shared["interactions"])
            if shared.get("source"):
                ctx.data_sources[scale] = shared["source"]
        run_group(cases, scale, ctx, RunSettings(**job["settings"]), worker=job["worker"],
                  emit=lambda r: send({"row": r.to_dict()}),
                  notify=lambda key, stage: send({"stage": [key, stage]}))
    except BaseException as exc:  # noqa: BLE001 - the parent records it against the case
        traceback.print_exc(file=sys.stderr)
        try:
            send({"fatal": f"{type(exc).__name__}: {exc}"})
        except (OSError, ValueError):
            pass
        return 70
    finally:
        try:
            out.close()
        except OSError:
            pass
    return 0


def _call(ref: str, out_path: str, kwargs: str) -> int:
    result = _resolve(ref)(**json.loads(kwargs))
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    if argv[:1] == ["group"] and len(argv) == 3:
        return _group(argv[1], int(argv[2]))
    if argv[:1] == ["call"] and len(argv) == 4:
        return _call(argv[1], argv[2], argv[3])
    print("usage: python -m recsys_fast.harness.run.worker group JOB FD | call FN OUT KWARGS",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
