"""cosine_topk against implicit's CosineRecommender, the harness's case, interleaved rounds.

Run from the repository root::

    python bench/topk_vs_implicit.py [10m] [25m] [ml10m-shape] [--rounds 5] [--threads 2]

For each data set, in one process: ours is ``cosine_topk(items, 50)`` (self excluded) and the
reference is ``CosineRecommender(K=51).fit(user_items)`` (implicit keeps the item itself), as
in ``recsys_fast.harness.cases.impls_similarity``. ``10m`` / ``25m`` are the harness's synthetic
matrices (``recsys_fast.data.synthetic``, seed 0, built through ``harness.casedata``);
``ml10m-shape`` is the power-law stand-in of ``bench/peers_cosine_topk.py`` (ML-10M's shape,
not from our generator). Rounds alternate ours, implicit, ours, ... after one warm-up call of
each; the ratio printed is implicit's median over ours, with the CPU model.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _threads import pin_threads_from_argv  # noqa: E402  (before numpy / numba)

_threads = pin_threads_from_argv()

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
K = 50


def user_items(name: str):
    """Users x items float32 CSR of a data set."""
    if name == "ml10m-shape":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from peers_cosine_topk import standin_10m

        return standin_10m().astype(np.float32).tocsr()
    from recsys_fast.harness.cases import casedata
    from recsys_fast.harness.run.context import CaseContext

    return casedata.train_csr(CaseContext(seed=0), name, np.float32)


def measure(name: str, rounds: int, threads: int) -> dict:
    from implicit.nearest_neighbours import CosineRecommender

    from recsys_fast import kernels

    t0 = time.perf_counter()
    X = user_items(name)
    items = X.T.tocsr()
    print(f"{name}: {X.shape[0]} users x {X.shape[1]} items, nnz {X.nnz:,} "
          f"({time.perf_counter() - t0:.1f} s to build)", flush=True)

    def ours():
        return kernels.cosine_topk(items, K, n_threads=threads)

    def theirs():
        model = CosineRecommender(K=K + 1, num_threads=threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, show_progress=False)
        return model.similarity

    kernels.warmup()
    ours()
    theirs()
    times: dict[str, list[float]] = {"ours": [], "implicit": []}
    for _ in range(rounds):
        for label, fn in (("ours", ours), ("implicit", theirs)):
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    med = {label: statistics.median(t) for label, t in times.items()}
    strategy = "?"
    if hasattr(kernels, "cosine_topk_result"):
        strategy = kernels.cosine_topk_result(items, K, n_threads=threads).strategy
    print(f"  ours     median {med['ours']:.3f} s  {[round(t, 3) for t in times['ours']]}  "
          f"strategy {strategy}")
    print(f"  implicit median {med['implicit']:.3f} s  {[round(t, 3) for t in times['implicit']]}")
    print(f"  ratio implicit / ours = {med['implicit'] / med['ours']:.2f}x", flush=True)
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", default=["10m"],
                    help="10m, 25m (synthetic) and/or ml10m-shape (power-law stand-in)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(_threads))
    args = ap.parse_args(argv)
    from recsys_fast.memory import cpu_model

    print(f"CPU: {cpu_model()}, {args.threads} threads, load {os.getloadavg()[0]:.2f}",
          flush=True)
    for name in args.data:
        measure(name, args.rounds, args.threads)
    print(f"load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
