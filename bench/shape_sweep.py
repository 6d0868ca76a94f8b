"""The shape sweep: ``cosine_topk`` (ours and a peer) over the named synthetic shapes.

For each shape of :data:`recsys_fast.data.synthetic.SHAPES` (or ``--shapes``) and scale, one
``recsys-fast bench --shape NAME`` run of the ``cosine_topk`` cases (``optimised`` and the peer,
CPU), each its own results file in ``results/<machine>/studies/shape_sweep_<UTC time>/``
(beside the study, so the report's newest run stays a full one). The summary, written to
``results/<machine>/studies/shape_sweep_<UTC time>.json`` with a Markdown table and a plot
beside it, gives per (scale, shape) the data's work (item-item pair multiply-adds, top-1 %
item share), our median time, our time per pair multiply-add, and the peer over ours with
its interval: whether ours tracks the work, and the worst shape first::

    python bench/shape_sweep.py --scales 1m --peer implicit
    python bench/shape_sweep.py --scales 10m --shapes default,heavy-head,very-flat
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def summarise(data: dict, shape: str, scale: str, peer: str) -> dict:
    """One sweep row from a results document."""
    rows = {(c["impl"], c["scale"]): c for c in data["cases"]}
    ours = rows.get(("optimised", scale))
    other = rows.get((peer, scale))
    rec = (data.get("scale_shapes") or {}).get(scale) or {}
    work = rec.get("work") or {}
    out = {"scale": scale, "shape": shape, "n_users": rec.get("n_users"),
           "n_items": rec.get("n_items"), "n_ratings": rec.get("n_ratings"), **work,
           "ours_status": ours and ours["status"], "peer_status": other and other["status"]}
    if ours and ours["status"] == "ok":
        out["ours_s"] = ours["median_s"]
        out["strategy"] = (ours.get("extra") or {}).get("strategy")
        if work.get("pair_madds_item_item"):
            out["ours_ns_per_pair_madd"] = 1e9 * ours["median_s"] / work["pair_madds_item_item"]
    if other and other["status"] == "ok":
        out["peer_s"] = other["median_s"]
    for r in data.get("ratios") or []:
        if (r["kind"] == "peers_to_ours" and r["scale"] == scale
                and r["baseline"].startswith(f"{peer}/")):
            out["peer_over_ours"] = r["value"]
            out["interval"] = [r.get("lo"), r.get("hi")]
    return out


def table(rows: list[dict], peer: str) -> str:
    head = (f"| scale | shape | pair madds | top-1 % share | ours (s) | strategy | ns / pair madd "
            f"| {peer} (s) | {peer} / ours [interval] |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["scale"], r.get("peer_over_ours", 0))):
        ci = r.get("interval") or [None, None]
        ratio = (f"{r['peer_over_ours']:.2f}x [{ci[0]:.2f}, {ci[1]:.2f}]"
                 if r.get("peer_over_ours") and ci[0] is not None else
                 f"{r.get('peer_over_ours', float('nan')):.2f}x")
        lines.append(
            f"| {r['scale']} | {r['shape']} | {r.get('pair_madds_item_item', 0):.3g} | "
            f"{r.get('top1pct_item_share', 0):.3f} | {r.get('ours_s', float('nan')):.3f} | "
            f"{r.get('strategy') or '-'} | {r.get('ours_ns_per_pair_madd', float('nan')):.3f} | "
            f"{r.get('peer_s', float('nan')):.3f} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], peer: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for scale in sorted({r["scale"] for r in rows}):
        mine = sorted((r for r in rows if r["scale"] == scale and "peer_over_ours" in r),
                      key=lambda r: r["pair_madds_item_item"])
        x = [r["pair_madds_item_item"] for r in mine]
        a.scatter(x, [r["peer_over_ours"] for r in mine], label=scale)
        b.scatter(x, [r["ours_ns_per_pair_madd"] for r in mine], label=scale)
        for r in mine:
            a.annotate(r["shape"], (r["pair_madds_item_item"], r["peer_over_ours"]), fontsize=7)
            b.annotate(r["shape"], (r["pair_madds_item_item"], r["ours_ns_per_pair_madd"]),
                       fontsize=7)
    a.set(xscale="log", xlabel="item-item pair multiply-adds", ylabel=f"{peer} time / ours",
          title=f"cosine_topk: {peer} over ours, by shape")
    a.axhline(1.0, color="grey", lw=0.8)
    b.set(xscale="log", xlabel="item-item pair multiply-adds", ylabel="ns per pair multiply-add",
          title="ours: time per unit of work, by shape")
    a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from recsys_fast.data.synthetic import SHAPES
    from recsys_fast.harness.run.bench import run_bench
    from recsys_fast.harness.run.machine import machine_id, machine_info

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1m")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--peer", default="implicit")
    ap.add_argument("--quick", action="store_true", help="the bench's quick settings")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    scales = [s.strip() for s in args.scales.split(",") if s.strip()]
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shapes {unknown}; valid: {', '.join(SHAPES)}")
    info = machine_info()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = args.out / machine_id(info) / "studies"
    runs = folder / f"shape_sweep_{stamp}"  # the runs stay beside the study, out of the report
    rows, files = [], []
    for i, shape in enumerate(shapes):
        print(f"[{i + 1}/{len(shapes)}] shape {shape}: {', '.join(scales)}", flush=True)
        data, path = run_bench(scales=scales, kernels=["cosine_topk"],
                               impls=["optimised", args.peer], backends=["cpu"],
                               quick=args.quick, out_dir=runs, shape=shape, progress=False)
        files.append(str(path.relative_to(folder)) if path else None)
        for scale in scales:
            rows.append(summarise(data, shape, scale, args.peer))
            r = rows[-1]
            print(f"  {scale}: ours {r.get('ours_s', float('nan')):.3f} s "
                  f"({r.get('strategy')}), {args.peer} {r.get('peer_s', float('nan')):.3f} s, "
                  f"ratio {r.get('peer_over_ours', float('nan')):.2f}x", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"shape_sweep_{stamp}.json"
    out.write_text(json.dumps({"study": "shape_sweep", "cpu": info.get("cpu_model"),
                               "peer": args.peer, "scales": scales, "shapes": shapes,
                               "results_files": files, "rows": rows}, indent=1))
    md = table(rows, args.peer)
    out.with_suffix(".md").write_text(f"cosine_topk shape sweep, {info.get('cpu_model')}, "
                                      f"{info.get('cores_logical')} logical cores\n\n{md}")
    try:
        plot(rows, args.peer, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
    print(md)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
