"""Cold start: the course's hybrids against CF, item-kNN, content and popularity alone.

Run from the repository root::

    python bench/hybrid_cold_start.py [--datasets ml-100k,ml-latest-small] [--no-cold-items]

On ML-100K and ml-latest-small (``$RECSYS_FAST_SHARED/<set>``; a missing set is skipped with
a line): for each ``keep`` in 1, 3, 5, 20 % of the users (seed 0) keep only their ``keep``
earliest ratings in train (equal timestamps ordered by a seeded shuffle) and are ranked
against their other ratings; then a cold-item table (a seeded random 80/20 split, relevant =
held-out items with 1 to 5 training ratings). Protocol, models and content:
:mod:`recsys_fast.quality.cold_start`. Prints markdown tables (recall@10, nDCG@10,
precision@10 with 95 % bootstrap intervals over users) and writes
``results/<machine>/studies/hybrid_cold_start_<UTC time>.json`` with the git state and the
machine (CPU model). The figures are quality, not timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DATASETS = ("ml-100k", "ml-latest-small")


def load(name: str, folder: Path):
    """``(Interactions, tags or None)`` of a data set folder."""
    from recsys_fast.data.movielens import load_ml100k, load_movielens
    from recsys_fast.quality.cold_start import read_tags

    if name == "ml-100k":
        return load_ml100k(folder), None
    return load_movielens(folder), read_tags(folder)


def _facts_line(facts: dict) -> str:
    keys = ("train_ratings", "test_ratings", "evaluated_users", "relevant_items",
            "test_items_unknown", "users_without_relevant", "tags_used")
    return ", ".join(f"{k} {facts[k]}" for k in keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help=f"comma list of {', '.join(DATASETS)}")
    ap.add_argument("--no-cold-items", action="store_true", help="cold users only")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/...)")
    args = ap.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        ap.error(f"unknown data set(s) {unknown}; valid: {', '.join(DATASETS)}")

    from auto_regret import study_path

    from recsys_fast.harness.run.machine import git_info, machine_info
    from recsys_fast.quality import cold_start as cs

    info = machine_info()
    print(f"CPU: {info['cpu_model']}, {info['cores_logical']} logical cores", flush=True)
    shared = os.environ.get("RECSYS_FAST_SHARED")
    results, data = [], {}
    t_all = time.perf_counter()
    for name in names:
        folder = Path(shared) / name if shared else None
        if folder is None or not folder.is_dir():
            print(f"{name}: skipped (no folder {folder}; set RECSYS_FAST_SHARED)", flush=True)
            data[name] = {"skipped": f"no folder {folder}"}
            continue
        inter, tags = load(name, folder)
        r = inter.ratings
        print(f"{name}: {r['user_id'].nunique()} users, {r['item_id'].nunique()} items, "
              f"{len(r)} ratings, tags {'none' if tags is None else len(tags)}", flush=True)
        data[name] = {"folder": name, "users": int(r["user_id"].nunique()),
                      "items": int(r["item_id"].nunique()), "ratings": len(r),
                      "tags": None if tags is None else len(tags)}
        t0 = time.perf_counter()
        parts = cs.evaluate_cold_users(r, inter.items, tags=tags, log=print)
        if not args.no_cold_items:
            parts.append(cs.evaluate_cold_items(r, inter.items, tags=tags, log=print))
        for part in parts:
            part["dataset"] = name
            what = (f"cold users, keep={part['keep']}" if part["table"] == "cold-users"
                    else f"cold items (<= {part['max_ratings']} train ratings)")
            print(f"\n### {name}: {what}\n\n{_facts_line(part['facts'])}\n", flush=True)
            print(cs.markdown_table(part), flush=True)
            print(f"hybrid lists: {part['facts']['hybrid_lists']}\n", flush=True)
        results += parts
        print(f"{name}: done in {time.perf_counter() - t0:.1f} s", flush=True)
    record = {"study": "hybrid_cold_start",
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "what": "quality (recall/nDCG/precision@10), not timing",
              "git": git_info(), "machine": info, "cpu_model": info["cpu_model"],
              "protocol": {"keeps": list(cs.KEEPS), "test_fraction": cs.TEST_FRACTION,
                           "seed": cs.SEED, "top_n": cs.TOP_N,
                           "content_neighbours": cs.CONTENT_NEIGHBOURS,
                           "min_ratings": cs.MIN_RATINGS, "cold_item_max": cs.COLD_ITEM_MAX,
                           "models": list(cs.MODELS),
                           "bootstrap_resamples": cs.metrics.BOOTSTRAP_RESAMPLES},
              "data": data, "results": results,
              "seconds": time.perf_counter() - t_all}
    out = args.out or study_path("hybrid_cold_start", info)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {out} ({record['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
