"""Does the YouTube DNN learn? Early-stopped training against the most-popular baseline, and the
training seconds each model needs to reach a recall: optimised (full and sampled softmax),
naive (the course's one whole-data batch per epoch) and, when installed, TFRS's retrieval model.

Split (``dnn.features.split_last_valid``): each user's most recent item is the test label, the
one before it the validation label; training examples end before both, ``--labels-per-user``
label positions per user, each with the history before it (the paper's "fixed number of
training examples per user"; the course trains on one example per user, 943 at ML-100K, and
stays below the popularity list). Ties of timestamps keep file order. ``-prior`` models start
their output bias at the log of each item's training popularity (``prepare_optimised``'s
``prior_bias``); the others start at zeros, as the course. Every model trains one
epoch at a time with recall@k on the validation labels after each; it stops after
``--patience`` epochs without a better validation recall, or at ``--max-epochs`` or
``--max-seconds`` of training, and keeps its best validation epoch (``dnn.train.train_until``).
Test recall@k is recorded after every epoch for the time-to-recall table only; nothing is chosen
on it. Most-popular ranks items by their ratings outside the test labels.

Time to a recall = training seconds (fit calls only, evaluation excluded) until the test recall
first reached it: most-popular's recall, and the highest recall every model reached (the
same-recall comparison). Scales: ``100k`` is the real MovieLens 100K when
``$RECSYS_FAST_SHARED/ml-100k`` (or ``--ml100k``) exists, the others synthetic. Writes
``<out>/<machine-id>/studies/dnn_learns_<scale>_<UTC time>.json``.

    python bench/dnn_learns.py --scale 100k,1m --out results
"""

from __future__ import annotations

import os

# tensorflow-recommenders needs tf.keras = Keras 2, chosen when TensorFlow is imported
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

MODELS = ("optimised-full", "optimised-full-prior", "optimised-sampled",
          "optimised-sampled-prior", "naive", "tfrs")


def model_specs(train, names: list[str], num_sampled: int) -> dict:
    """name -> (prepare, fit one epoch, recall(state, features, k)) of each model asked for and
    importable; a missing optional peer is left out with a line saying why."""
    from recsys_fast.dnn.train import evaluate_recall, fit_optimised_epochs, prepare_optimised
    from recsys_fast.naive import youtube_dnn

    def ours(st, f, k):
        return evaluate_recall(st.model, f, k=k)[f"recall@{k}"]

    sampled = {"loss": "sampled", "num_sampled": min(num_sampled, train.n_items // 2)}
    specs = {
        "optimised-full": (lambda: prepare_optimised(train, seed=0), fit_optimised_epochs, ours),
        "optimised-full-prior": (lambda: prepare_optimised(train, seed=0, prior_bias=True),
                                 fit_optimised_epochs, ours),
        "optimised-sampled": (lambda: prepare_optimised(train, seed=0, **sampled),
                              fit_optimised_epochs, ours),
        "optimised-sampled-prior": (
            lambda: prepare_optimised(train, seed=0, prior_bias=True, **sampled),
            fit_optimised_epochs, ours),
        "naive": (lambda: youtube_dnn.prepare_naive(train, seed=0),
                  youtube_dnn.fit_naive_epochs, ours),
    }
    if "tfrs" in names:
        from recsys_fast.harness.cases import tfrs_retrieval as tr
        from recsys_fast.optional import skip_reason

        problem = skip_reason(("tensorflow_recommenders", "tf_keras")) or \
            tr.legacy_keras_problem()
        if problem:
            print(f"  tfrs: skipped ({problem})")
        else:
            specs["tfrs"] = (
                lambda: tr.prepare_retrieval(train, seed=0), tr.fit_retrieval_epochs,
                lambda st, f, k: tr.evaluate_retrieval_recall(st, f, k=k)[f"recall@{k}"])
    return {n: specs[n] for n in names if n in specs}


def study(inter, args) -> dict:
    from recsys_fast.dnn.features import split_last_valid
    from recsys_fast.dnn.train import popularity_recall, seconds_to_reach, train_until

    train, valid, test = split_last_valid(inter, labels_per_user=args.labels_per_user,
                                          history=args.history)
    k = args.k
    popular = popularity_recall(valid.item_counts, test, k)
    print(f"  {train.n_examples:,} training examples, {test.n_examples:,} test users; "
          f"most-popular recall@{k} {popular:.4f}", flush=True)
    runs = {}
    for name, (prepare, fit, recall) in model_specs(train, args.models, args.num_sampled).items():
        t0 = time.perf_counter()
        state = prepare()
        setup_s = time.perf_counter() - t0
        naive = name == "naive"  # one gradient step per epoch: many short epochs

        def progress(row, name=name):
            print(f"  {name} epoch {row['epoch']:>3}: {row['train_s']:7.1f} s, "
                  f"valid {row['valid']:.4f}, test {row['test']:.4f}", flush=True)

        curve = train_until(
            state, fit, valid, k=k, recall=recall, watch={"test": test}, progress=progress,
            max_epochs=args.naive_max_epochs if naive else args.max_epochs,
            patience=args.naive_patience if naive else args.patience,
            max_seconds=args.max_seconds)
        best = curve["epochs"][curve["best_epoch"] - 1]
        runs[name] = {"setup_s": setup_s, **curve, "test_at_best": best["test"],
                      "train_s_at_best": best["train_s"],
                      "epoch_s": curve["epochs"][-1]["train_s"] / len(curve["epochs"]),
                      "seconds_to_most_popular": seconds_to_reach(curve, "test", popular)}
        print(f"  {name}: best validation epoch {curve['best_epoch']} ({curve['stopped']}), "
              f"test recall@{k} {best['test']:.4f}; most-popular {popular:.4f}", flush=True)
    common = min(max(r["test"] for r in run["epochs"]) for run in runs.values())
    for run in runs.values():
        run["seconds_to_common"] = seconds_to_reach(run, "test", common)
    return {
        "shape": {"users": inter.n_users, "items": inter.n_items, "ratings": inter.n_ratings,
                  "train_examples": train.n_examples, "valid_examples": valid.n_examples,
                  "test_examples": test.n_examples},
        "k": k, "labels_per_user": args.labels_per_user, "history": args.history,
        "max_epochs": args.max_epochs, "patience": args.patience,
        "max_seconds": args.max_seconds, f"most_popular_recall@{k}": popular,
        "common_recall": common, "runs": runs,
    }


def table(doc: dict) -> str:
    """Markdown: per model, test recall at its best validation epoch, epochs, seconds per epoch
    and the seconds to most-popular's recall and to the common recall."""
    k = doc["k"]

    def secs(v):
        return "not reached" if v is None else f"{v:.1f} s"

    lines = [f"most-popular recall@{k}: {doc[f'most_popular_recall@{k}']:.4f}; common recall: "
             f"{doc['common_recall']:.4f}", "",
             f"| model | test recall@{k} (best valid epoch) | epochs run | s / epoch | "
             "to most-popular | to common |", "|---|---|---|---|---|---|"]
    for name, r in doc["runs"].items():
        lines.append(f"| {name} | {r['test_at_best']:.4f} (epoch {r['best_epoch']}) | "
                     f"{len(r['epochs'])} ({r['stopped']}) | {r['epoch_s']:.2f} | "
                     f"{secs(r['seconds_to_most_popular'])} | {secs(r['seconds_to_common'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="100k,1m", help="comma list (100k = real ML-100K if found)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--labels-per-user", type=int, default=20)
    p.add_argument("--history", default="paper", choices=("course", "paper"))
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--naive-max-epochs", type=int, default=400)
    p.add_argument("--naive-patience", type=int, default=40)
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="training seconds per model at most")
    p.add_argument("--num-sampled", type=int, default=512)
    p.add_argument("--ml100k", default=None, help="folder of the real MovieLens 100K")
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    if min(args.k, args.labels_per_user, args.max_epochs, args.patience) < 1:
        p.error("--k, --labels-per-user, --max-epochs and --patience must be >= 1")

    from recsys_fast.harness.cases.registry import check_scales
    from recsys_fast.harness.run import machine
    from recsys_fast.harness.run.context import CaseContext
    from recsys_fast.results_store import atomic_write_text

    scales = check_scales(args.scale.split(","))
    ctx = CaseContext(None, ml100k=args.ml100k)
    env = machine.environment(gemm_n=None)
    print(f"CPU: {env.get('machine', {}).get('cpu_model', '?')}", flush=True)
    for scale in scales:
        inter = ctx.interactions(scale)
        print(f"{scale}: {ctx.data_sources[scale]}", flush=True)
        doc = {"what": __doc__.splitlines()[0], "scale": scale,
               "data": ctx.data_sources[scale],
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               **env, **study(inter, args)}
        print(table(doc), flush=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = Path(args.out) / env["machine_id"] / "studies" / f"dnn_learns_{scale}_{stamp}.json"
        atomic_write_text(path, json.dumps(doc, indent=2, default=str))
        print(f"written to {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
