"""Fit the synthetic generator's laws to a real rating set: the named shapes of
``recsys_fast.data.synthetic.SHAPES`` that stand for the real sets come from here.

The observable laws of a rating set (:meth:`Interactions.laws`): the slope of log(count) against
log(rank) over the body of the item popularity curve (ranks from the top 1 % to the median
item), the standard deviation of log(ratings per user), the fewest ratings per user and the
most as a share of the items. The generator's nominal exponent and sigma differ from what its
output shows (sampling without replacement, the floor and the cap), so :func:`fit` generates
at the real set's own sizes and corrects the nominal values until the generated set shows the
real set's laws (a few fixed-point rounds, each one generation)::

    python bench/fit_shapes.py ml-100k ml-latest-small movies-ratings-small
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np


def fit(inter, rounds: int = 4) -> dict:
    """Nominal laws whose generated set, at ``inter``'s sizes, shows ``inter``'s laws."""
    from recsys_fast.data.synthetic import SyntheticSpec, generate

    want = inter.laws()
    laws = {"popularity_exponent": want["popularity_exponent"],
            "activity_sigma": want["activity_sigma"], "min_per_user": want["min_per_user"],
            "max_user_share": min(1.0, want["max_user_share"])}
    base = SyntheticSpec(inter.n_users, inter.n_items, inter.n_ratings)
    for _ in range(rounds):
        got = generate(dataclasses.replace(base, **laws)).laws()
        for k in ("popularity_exponent", "activity_sigma"):
            laws[k] = float(np.clip(laws[k] * want[k] / max(got[k], 1e-6), 0.05, 9.0))
    got = generate(dataclasses.replace(base, **laws)).laws()
    return {"nominal": {k: round(v, 3) if isinstance(v, float) else v for k, v in laws.items()},
            "real": want, "generated": got}


def main(argv=None) -> int:
    from recsys_fast.data import catalogue

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="+", help="catalogue names (real sets)")
    p.add_argument("--data-root", default=os.environ.get("RECSYS_FAST_SHARED"),
                   help="folder holding the data set folders (default $RECSYS_FAST_SHARED)")
    args = p.parse_args(argv)
    for name in args.datasets:
        spec = catalogue.get_spec(name)
        path = os.path.join(args.data_root, spec.folder) if args.data_root else None
        print(json.dumps({"dataset": name, **fit(catalogue.load(name, path))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
