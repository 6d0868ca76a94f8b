"""``recsys-fast``: data, recommend, bench, report and eval commands.

Errors from bad input (:class:`~recsys_fast.errors.RecsysFastError`, ``ValueError``) and
from the file system (``OSError``: a read-only or missing output folder, a full disk) are
printed as one line without a traceback and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from recsys_fast.errors import RecsysFastError

EXIT_BAD_INPUT = 2


# -- data ---------------------------------------------------------------------------------
def _cmd_data_list(args: argparse.Namespace) -> int:
    from recsys_fast.data import catalogue

    rows = catalogue.list_datasets()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        cached = "cached" if r.get("cached") else ""
        print(f"{r['name']:<{width}}  {r.get('kind', ''):<10} {cached:<7} {r.get('description', '')}")
    from recsys_fast.data.synthetic import SCALES

    print("\nsynthetic scales (offline, deterministic): " + ", ".join(f"synthetic-{s}" for s in SCALES))
    return 0


def _print_summary(s: dict) -> None:
    print(f"data set: {s['name']}")
    print(f"users:    {s['users']:,}")
    print(f"items:    {s['items']:,} rated ({s['items_in_catalogue']:,} in the catalogue)")
    print(f"ratings:  {s['ratings']:,}")
    print(f"density:  {s['density']:.4%}")
    print("rating histogram:")
    total = max(1, s["ratings"])
    for value, count in s["rating_histogram"].items():
        bar = "#" * max(1, round(40 * count / total)) if count else ""
        print(f"  {value:>4g}  {count:>10,}  {bar}")


def _cmd_data_info(args: argparse.Namespace) -> int:
    from recsys_fast.data import catalogue

    if args.name.startswith("synthetic-"):
        s = catalogue.load_named(args.name).summary()
    else:
        s = catalogue.info(args.name, path=args.path)
    if args.json:
        print(json.dumps(s, indent=2, default=str))
    elif "ratings" in s:
        _print_summary(s)
    else:  # an items-only data set (metadata, descriptions)
        for key, value in s.items():
            print(f"{key + ':':<22}{value}")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from recsys_fast.data import catalogue

    res = catalogue.fetch(
        args.name, cache=args.cache, url=args.url, force=args.force, verify=not args.no_verify
    )
    state = "cache used, nothing downloaded" if res.used_cache else "downloaded and verified"
    print(f"{args.name}: {state} -> {res.path} (sha256 {res.sha256})")
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from recsys_fast.data.synthetic import generate
    from recsys_fast.data.writers import write_synthetic_ml100k

    if getattr(args, "format", "ml100k") == "parquet":
        return _synth_parquet(args)
    t0 = time.perf_counter()
    inter = generate(args.scale, seed=args.seed)
    write_synthetic_ml100k(
        inter, Path(args.out), force=args.force, info={"scale": args.scale, "seed": args.seed}
    )
    print(
        f"wrote synthetic-{args.scale} (seed {args.seed}) in ML-100K format to {args.out} "
        f"[{inter.n_users:,} users, {inter.n_items:,} items, {inter.n_ratings:,} ratings, "
        f"{time.perf_counter() - t0:.1f} s]"
    )
    return 0


def _synth_parquet(args: argparse.Namespace) -> int:
    from recsys_fast.data.parquet import write_synthetic_parquet

    t0 = time.perf_counter()
    meta = write_synthetic_parquet(args.scale, Path(args.out), seed=args.seed)
    rows = sum(p["rows"] for p in meta["parts"])
    print(f"wrote synthetic-{args.scale} (seed {args.seed}) as Parquet to {args.out} "
          f"[{len(meta['parts'])} partitions by user, {rows:,} ratings, {meta['mode']} mode, "
          f"{time.perf_counter() - t0:.1f} s]")
    return 0


# -- recommend (the naive course recommenders, with timings) ------------------------------
def _cmd_recommend(args: argparse.Namespace) -> int:
    from recsys_fast import demo

    return demo.run(args.dataset, path=args.path, which=args.which, n=args.n, epochs=args.epochs)


# -- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recsys-fast",
        description="Naive course recommenders vs optimised kernels, benchmarked on CPU and GPU.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="list, inspect, fetch or synthesise data sets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="known data sets and synthetic scales")
    dl.set_defaults(func=_cmd_data_list)
    di = dsub.add_parser("info", help="counts, density and rating histogram of a data set")
    di.add_argument("name", help="catalogue name (e.g. ml-100k) or synthetic-<scale>")
    di.add_argument("--path", help="folder holding the data set's files (instead of the cache)")
    di.add_argument("--json", action="store_true", help="print JSON")
    di.set_defaults(func=_cmd_data_info)
    df = dsub.add_parser("fetch", help="download a GroupLens archive, verify SHA-256, cache it")
    df.add_argument("name")
    df.add_argument("--cache", help="cache folder (default $RECSYS_FAST_DATA or datasets/)")
    df.add_argument("--url", help="download from this URL instead (a mirror)")
    df.add_argument("--force", action="store_true", help="download even if cached")
    df.add_argument(
        "--no-verify",
        action="store_true",
        help="accept an archive with no published checksum (ml-10m); its SHA-256 is still "
        "printed, and the result says NOT verified (refused where a checksum is published)",
    )
    df.set_defaults(func=_cmd_data_fetch)
    ds = dsub.add_parser("synth", help="write a synthetic data set in ML-100K file format")
    ds.add_argument("scale", help="100k, 1m, 10m or 25m")
    ds.add_argument("--out", required=True, help="output folder")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument(
        "--force",
        action="store_true",
        help="write into a folder holding files data synth did not write: replaces those named "
        "u.data, u.item, u.genre, u.info, u.user, u.occupation; other files are left alone",
    )
    ds.add_argument("--format", choices=("ml100k", "parquet"), default="ml100k",
                    help="ml100k files (default) or Parquet partitioned by user range "
                         "(also scales 100m and 1b, written streaming)")
    ds.set_defaults(func=_cmd_data_synth)

    r = sub.add_parser("recommend", help="run the naive course recommenders and time them")
    r.add_argument(
        "--dataset",
        default="synthetic-100k",
        help="synthetic-<scale> (default, offline) or a catalogue name such as ml-100k",
    )
    r.add_argument("--path", help="folder of the real data set")
    r.add_argument(
        "--which",
        default="simple,cf,content,dnn",
        help="comma list of simple, cf, content, dnn (default: all four)",
    )
    r.add_argument("-n", type=int, default=5, help="items to show per recommender")
    r.add_argument("--epochs", type=int, default=20, help="training epochs of the DNN (default 20)")
    r.set_defaults(func=_cmd_recommend)

    from recsys_fast.bench_cli import add_bench_commands
    from recsys_fast.quality.cli import add_eval_command

    add_bench_commands(sub)
    add_eval_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`, which has exited
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (RecsysFastError, OSError, KeyError, ValueError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"recsys-fast: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("recsys-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
