"""``recsys-fast eval``: run the quality protocol, write ``results/<machine>/quality-*.json``,
print the tables. Exits 1 when a model errored, 0 otherwise (skips are not failures)."""

from __future__ import annotations

import argparse
import os
import sys


def _names(text: str) -> str:
    """A comma list with at least one name (an empty one would read as "all" or "none")."""
    if not [t for t in text.split(",") if t.strip()]:
        raise argparse.ArgumentTypeError(f"empty list {text!r}: give at least one name")
    return text


def add_eval_command(subparsers) -> None:
    from recsys_fast.quality.evaluate import DATASETS

    e = subparsers.add_parser(
        "eval", help="accuracy of our models and the peers (RMSE/MAE, top-10 metrics)",
        description="Run the quality protocol (recsys_fast/quality/evaluate.py) and write "
        "results/<machine-id>/quality-<UTC time>-<random>.json.")
    e.add_argument("--dataset", default=",".join(DATASETS), type=_names,
                   help=f"comma list of {', '.join(DATASETS)} (default: all)")
    e.add_argument("--models", default=None, type=_names,
                   help="comma list of model names (default: all; --list shows them)")
    e.add_argument("--data-root", default=None,
                   help="folder holding ml-100k/, ml-latest-small/ and movies-dataset/ "
                   "(default $RECSYS_FAST_SHARED, else the download cache)")
    e.add_argument("--out", default="results", help="results folder (default results/)")
    e.add_argument("--no-rating", action="store_true", help="skip rating prediction")
    e.add_argument("--no-topn", action="store_true", help="skip top-N")
    e.add_argument("--no-published", action="store_true",
                   help="skip re-running Surprise's published ML-100K procedure")
    e.add_argument("--list", action="store_true", help="list the models and exit")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys_fast import models as M
    from recsys_fast.quality import evaluate as ev
    from recsys_fast.quality import published, report, store

    if args.list:
        for m in M.all_models():
            why = m.skip_reason()
            print(f"{m.name:<40} {'' if why is None else '[skipped: ' + why + '] '}{m.note}")
        return 0
    from recsys_fast.harness.run.machine import git_info
    from recsys_fast.results_store import ensure_writable

    ensure_writable(args.out)  # before hours of evaluation, not after
    git = git_info()  # the code measured is the code at the start of the run
    names = [d.strip() for d in args.dataset.split(",") if d.strip()]
    chosen = {m.name for m in M.select(args.models)}  # validates the names first
    make = lambda: [m for m in M.all_models() if m.name in chosen]  # noqa: E731
    root = args.data_root or os.environ.get("RECSYS_FAST_SHARED")
    paths = {n: os.path.join(root, ev.data_folder(n))
             for n in names if root and not n.startswith("synthetic")}
    rows = ev.evaluate(names, make, paths=paths, log=ev.progress,
                       topn=not args.no_topn, rating=not args.no_rating)
    pub_models = chosen & set(published.PUBLISHED)
    if "ml-100k" in names and pub_models and not args.no_published and not args.no_rating:
        if M.SurpriseKNN.skip_reason():
            rows += [{"task": "published", "dataset": "ml-100k", "split": "KFold(5, random_state=0)",
                      "model": m, "status": "skipped", "reason": M.SurpriseKNN.skip_reason()}
                     for m in sorted(pub_models)]
        else:
            rows += [r for r in published.surprise_published_rows(
                ev.dataset_path("ml-100k", paths.get("ml-100k")), log=ev.progress)
                if r["model"] in pub_models]
    settings = {"datasets": names, "models": sorted(chosen), "top_n": ev.TOP_N, "seed": ev.SEED,
                "rating": not args.no_rating, "topn": not args.no_topn}
    doc = store.build_document(rows, settings=settings, protocol=ev.__doc__, git=git)
    path = store.write_document(doc, args.out)
    print(report.quality_markdown([path]))
    print(f"wrote {path}")
    errors = [r for r in rows if r["status"] == "error"]
    for r in errors:
        print(f"error: {r['model']} on {r['dataset']} {r['split']}: {r['reason']}", file=sys.stderr)
    return 1 if errors else 0
