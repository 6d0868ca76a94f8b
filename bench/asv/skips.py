"""List the combinations the asv suites skip here, one line each with the reason.

asv shows a skipped parameter combination as ``n/a`` and keeps the reason to itself. Run::

    python bench/asv/skips.py                 # skipped combinations and why
    python bench/asv/skips.py --all cosine_topk   # every combination of one kernel, run or not

A line reads ``kernel impl backend scale: reason``; the asv class is the kernel's name in
CamelCase (``cosine_topk`` -> ``CosineTopk``). Only the declared conditions are checked (no data
is built): a backend that imports but cannot run is found by asv's ``setup`` itself.
"""

from __future__ import annotations

import argparse
import sys

try:
    from .common import combinations, why_skipped
except ImportError:  # run as a script: this folder is sys.path[0]
    from common import combinations, why_skipped


def skip_lines(kernels: list[str] | None = None, show_all: bool = False) -> list[str]:
    """One line per skipped combination (``show_all``: per combination, ``runs`` or the reason)."""
    lines = []
    for kernel, impl, backend, scale in combinations(kernels):
        reason = why_skipped(kernel, impl, backend, scale)
        if reason or show_all:
            lines.append(f"{kernel} {impl} {backend} {scale}: {reason or 'runs'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/asv/skips.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernels", nargs="*", help="kernels (default all)")
    parser.add_argument("--all", action="store_true", help="list the combinations that run too")
    args = parser.parse_args(argv)
    try:
        lines = skip_lines(args.kernels or None, args.all)
    except ValueError as exc:  # an unknown kernel
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    total = sum(1 for _ in combinations(args.kernels or None))
    skipped = sum(1 for line in lines if not line.endswith(": runs"))
    print(f"{skipped} of {total} combinations skipped here, {total - skipped} run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
