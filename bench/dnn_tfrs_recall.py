"""Our YouTube DNN vs TensorFlow Recommenders' two-tower retrieval model: examples/s per epoch
and recall@k on the same held-out item, after the same number of epochs.

Both learn from the train side of the same leave-last-out split (``dnn.features.split_last``:
each user's second most recent item is the label, the most recent one is held out) through the
same length-bucketed tf.data batches of 256 and Adam(0.003); they differ in the objective: ours
is the course's full softmax over every item (with a bias per item), TFRS's
``tasks.Retrieval`` an in-batch softmax (the batch's own labels are the negatives) over query .
candidate dot products (``recsys_fast.harness.cases.tfrs_retrieval``). So the comparison is of
throughput and quality, never of outputs. Epochs alternate (ours, TFRS, ours, ...) so machine
drift hits all; recall@k (and that of the most-popular-items baseline, as a floor) is measured
after every epoch on the held-out items. Epoch 1 (graph tracing) is reported apart. TFRS runs
twice: with ``Retrieval()``'s defaults (``tfrs``, the benchmark case) and with the logQ
correction of its in-batch negatives (``tfrs_logq``: ``candidate_sampling_probability`` = each
label's share of the training labels), the documented remedy for popularity-skewed data.

Scales: ``100k`` is the real MovieLens 100K when ``$RECSYS_FAST_SHARED/ml-100k`` (or ``--ml100k``)
exists, the others synthetic (as ``recsys-fast bench``). Writes
``<out>/<machine-id>/studies/dnn_tfrs_recall_<scale>.json``.

    python bench/dnn_tfrs_recall.py --scale 1m,100k --epochs 10 --out results
"""

from __future__ import annotations

import os

# tensorflow-recommenders needs tf.keras = Keras 2, chosen when TensorFlow is imported
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def compare(inter, epochs: int, k: int) -> dict:
    from recsys_fast.dnn.features import split_last
    from recsys_fast.dnn.train import (
        evaluate_recall,
        fit_optimised_epochs,
        popularity_recall,
        prepare_optimised,
    )
    from recsys_fast.harness.cases import tfrs_retrieval as tr

    train, test = split_last(inter)
    models = {  # name -> (prepare, fit one epoch, recall@k)
        "ours": (lambda: prepare_optimised(train, seed=0), fit_optimised_epochs,
                 lambda st: evaluate_recall(st.model, test, k=k)),
        "tfrs": (lambda: tr.prepare_retrieval(train, seed=0), tr.fit_retrieval_epochs,
                 lambda st: tr.evaluate_retrieval_recall(st, test, k=k)),
        "tfrs_logq": (lambda: tr.prepare_retrieval(train, seed=0, sampling_correction=True),
                      tr.fit_retrieval_epochs,
                      lambda st: tr.evaluate_retrieval_recall(st, test, k=k)),
    }
    states, setup = {}, {}
    for name, (prepare, _fit, _recall) in models.items():
        t0 = time.perf_counter()
        states[name] = prepare()
        setup[name] = time.perf_counter() - t0
    curve = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch}
        for name, (_prepare, fit, recall) in models.items():  # interleaved: one epoch each
            out = fit(states[name], 1)
            row[f"{name}_examples_per_s"] = out["examples_per_s"]
            row[f"{name}_loss"] = float(out["loss"][-1])
            row[f"{name}_recall@{k}"] = recall(states[name])[f"recall@{k}"]
        curve.append(row)
        print(f"  epoch {epoch:>2}: " + " | ".join(
            f"{name} {row[f'{name}_examples_per_s']:>7,.0f} ex/s "
            f"recall@{k} {row[f'{name}_recall@{k}']:.4f}" for name in models))
    steady = curve[1:] or curve  # epoch 1 traces the training functions

    def ratio(a: str, b: str) -> dict:
        r = [x[f"{a}_examples_per_s"] / x[f"{b}_examples_per_s"] for x in steady]
        return {"median": statistics.median(r), "min": min(r), "max": max(r),
                "epoch_pairs": len(r)}

    return {
        "shape": {"users": inter.n_users, "items": inter.n_items, "ratings": inter.n_ratings,
                  "train_examples": train.n_examples, "test_examples": test.n_examples},
        "epochs": epochs,
        "k": k,
        "setup_s": setup,
        "per_epoch": curve,
        "first_epoch_examples_per_s": {n: curve[0][f"{n}_examples_per_s"] for n in models},
        "median_examples_per_s_after_epoch_1": {
            n: statistics.median(x[f"{n}_examples_per_s"] for x in steady) for n in models},
        "ours_over_tfrs_examples_per_s": ratio("ours", "tfrs"),
        "ours_over_tfrs_logq_examples_per_s": ratio("ours", "tfrs_logq"),
        f"recall@{k}_after_last_epoch": {**{n: curve[-1][f"{n}_recall@{k}"] for n in models},
                                         "most_popular": popularity_recall(train.item_counts,
                                                                           test, k)},
        f"best_recall@{k}": {n: max((x[f"{n}_recall@{k}"], x["epoch"]) for x in curve)
                             for n in models},
        "options": {"ours": {key: states["ours"].options[key]
                             for key in ("batch_size", "loss", "n_batches", "pipeline")},
                    "tfrs": states["tfrs"].options, "tfrs_logq": states["tfrs_logq"].options},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="1m,100k", help="comma list (100k = real ML-100K if found)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ml100k", default=None, help="folder of the real MovieLens 100K")
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.k < 1:
        p.error("--epochs and --k must be >= 1")

    from recsys_fast.harness.cases.registry import check_scales
    from recsys_fast.harness.cases.tfrs_retrieval import legacy_keras_problem
    from recsys_fast.harness.run import machine
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.results_store import atomic_write_text

    problem = legacy_keras_problem()
    if problem:
        p.error(problem)
    scales = check_scales(args.scale.split(","))
    ctx = CaseContext(None, ml100k=args.ml100k)
    env = machine.environment(gemm_n=None)
    for scale in scales:
        inter = ctx.interactions(scale)
        print(f"{scale}: {ctx.data_sources[scale]}")
        study = compare(inter, args.epochs, args.k)
        doc = {"what": __doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
               "scale": scale, "data": ctx.data_sources[scale],
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               **env, **study}
        r = study["ours_over_tfrs_examples_per_s"]
        rec = study[f"recall@{args.k}_after_last_epoch"]
        print(f"{scale}: ours/tfrs examples/s median {r['median']:.2f}x "
              f"[{r['min']:.2f}-{r['max']:.2f}] over {r['epoch_pairs']} epoch pairs; "
              f"recall@{args.k} after {args.epochs} epochs: "
              + ", ".join(f"{n} {v:.4f}" for n, v in rec.items())
              + "; best (recall, epoch): " + ", ".join(
                  f"{n} {v[0]:.4f} @{v[1]}" for n, v in study[f"best_recall@{args.k}"].items()))
        path = Path(args.out) / env["machine_id"] / "studies" / f"dnn_tfrs_recall_{scale}.json"
        atomic_write_text(path, json.dumps(doc, indent=2, default=str))
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
