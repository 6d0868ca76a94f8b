"""Naive vs optimised YouTube DNN at one scale: examples/s over full epochs and recall@k on the
held-out last item after the same number of epochs (the DNN issue's target: optimised >= 5x
naive examples/s at ML-1M shape with recall@k no worse).

Both paths train on the leave-last-out split (``dnn.features.split_last``); one untimed epoch
each first (it traces the training function), then ``--epochs`` timed epochs, then recall@k on
the test labels. Writes ``<out>/<machine-id>/studies/dnn_recall_<scale>.json``.

    python bench/dnn_recall.py --scale 1m --epochs 3 --out results
"""

from __future__ import annotations

import argparse
import json
import time

from recsys_fast.harness.run import machine
from recsys_fast.results_store import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="1m")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)

    from recsys_fast.data.synthetic import generate
    from recsys_fast.dnn.features import split_last
    from recsys_fast.dnn.train import evaluate_recall, fit_optimised_epochs, prepare_optimised
    from recsys_fast.naive import youtube_dnn

    inter = generate(args.scale)
    train_f, test_f = split_last(inter)
    runs = {}
    for name in ("naive", "optimised"):
        t0 = time.perf_counter()
        if name == "naive":
            state = youtube_dnn.prepare_naive(train_f, seed=0)
            fit = youtube_dnn.fit_naive_epochs
        else:
            state = prepare_optimised(train_f, seed=0)
            fit = fit_optimised_epochs
        setup_s = time.perf_counter() - t0
        first = fit(state, 1)  # traces the training function: not timed below
        timed = fit(state, args.epochs)
        recall = evaluate_recall(state.model, test_f, k=args.k)
        runs[name] = {
            "setup_s": setup_s,
            "first_epoch_s": first["seconds"],
            "timed_epochs": args.epochs,
            "seconds": timed["seconds"],
            "epoch_s": timed["seconds"] / args.epochs,
            "examples_per_s": timed["examples_per_s"],
            "loss_last": float(timed["loss"][-1]),
            f"recall@{args.k}": recall,
            "epochs_total": args.epochs + 1,
        }
        print(f"{name:>9}: {timed['examples_per_s']:,.0f} examples/s, "
              f"{timed['seconds'] / args.epochs:.2f} s/epoch, recall@{args.k} {recall}")
    ratio = runs["optimised"]["examples_per_s"] / runs["naive"]["examples_per_s"]
    print(f"optimised / naive examples/s: {ratio:.1f}x")
    env = machine.environment(gemm_n=None)
    doc = {
        "what": __doc__.splitlines()[0],
        "scale": args.scale,
        "shape": {"users": inter.n_users, "items": inter.n_items, "ratings": inter.n_ratings,
                  "train_examples": train_f.n_examples, "test_examples": test_f.n_examples},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **env,
        "runs": runs,
        "optimised_over_naive_examples_per_s": ratio,
    }
    from pathlib import Path

    path = Path(args.out) / env["machine_id"] / "studies" / f"dnn_recall_{args.scale}.json"
    atomic_write_text(path, json.dumps(doc, indent=2, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
