"""Markdown tables of quality results files (:mod:`recsys_fast.quality.store`).

Files of one machine are merged: for each (task, data set, split, model) an ``ok`` row wins
over a ``skipped`` or ``error`` one, and among rows of equal standing the newest file's wins
(so a peer measured in a second environment, e.g. LensKit beside torch, fills its row).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from recsys_fast.quality.evaluate import DATASETS, RATING_ONLY, TOPN_SPLITS
from recsys_fast.quality.published import FOLD_FIGURES
from recsys_fast.quality.store import load_document

_RANK = {"ok": 2, "error": 1, "skipped": 0}
RATING_COLUMNS = (("ml-100k", "ua"), ("ml-100k", "ub"), ("ml-100k", "u1-u5"),
                  ("ml-latest-small", "random-80-20-seed0"))
TOPN_DATASETS = DATASETS


def _merge(docs: list[tuple[Path, dict]]) -> dict:
    best: dict = {}
    for path, doc in sorted(docs, key=lambda pd: pd[1]["created"]):
        for row in doc["rows"]:
            key = (row["task"], row["dataset"], row["split"], row["model"])
            old = best.get(key)
            if old is None or _RANK[row["status"]] >= _RANK[old["status"]]:
                best[key] = {**row, "_file": path.name}
    return best


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _cell(row: dict | None, fmt) -> str:
    if row is None:
        return "—"
    if row["status"] != "ok":
        return row["status"]
    return fmt(row)


def _models(rows: dict, task: str) -> list[str]:
    return list(dict.fromkeys(k[3] for k in rows if k[0] == task))


def _rating_table(rows: dict) -> list[str]:
    models = _models(rows, "rating")
    if not models:
        return []
    cols = [c for c in RATING_COLUMNS if any(("rating", *c, m) in rows for m in models)]
    out = ["**Rating prediction**, RMSE / MAE (lower is better; unclipped predictions)", "",
           "| model | " + " | ".join(f"{d} {s}" for d, s in cols) + " |",
           "|---|" + "---:|" * len(cols)]
    for m in models:
        cells = [_cell(rows.get(("rating", d, s, m)),
                       lambda r: f"{_f(r['rmse'])} / {_f(r['mae'])}") for d, s in cols]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    fb = []
    for d, s in cols:
        counts = {r.get("fallback_unknown") for k, r in rows.items()
                  if k[:3] == ("rating", d, s) and r["status"] == "ok"}
        n = {r.get("n_test") for k, r in rows.items()
             if k[:3] == ("rating", d, s) and r["status"] == "ok" and r.get("n_test")}
        if counts:
            fb.append(f"{d} {s}: {', '.join(map(str, sorted(counts)))}"
                      + (f" of {max(n):,}" if n else ""))
    nonfinite = sorted({k[3] for k, r in rows.items()
                        if k[0] == "rating" and (r.get("fallback_nonfinite") or 0) > 0})
    out += ["", "Test pairs predicted by the global-mean fallback (user or item unknown in "
            "train): " + "; ".join(fb) + ". Non-finite model predictions replaced by it: "
            + (", ".join(nonfinite) if nonfinite else "none") + "."]
    return out


def _rating_only(row: dict) -> bool:
    return row["status"] == "skipped" and row.get("reason", "").startswith(RATING_ONLY)


def with_ci(row: dict, name: str) -> str:
    """``value [lo, hi]`` of a row's metric, four decimals (the value alone without an
    interval)."""
    ci = row.get(f"{name}_ci")
    if not ci:
        return _f(row[name], 4)
    return f"{_f(row[name], 4)} [{_f(ci[0], 4)}, {_f(ci[1], 4)}]"


def _tuned_text(params: dict) -> str:
    """``item bm25, K=10`` / ``user, k=50`` (files before user-kNN joined: ``bm25, K=10``)."""
    if params.get("kind") == "user":
        return f"user, k={params['k']}"
    kind = "item " if params.get("kind") == "item" else ""
    return f"{kind}{params['weighting']}, K={params['k']}"


def _topn_table(rows: dict) -> list[str]:
    out = []
    splits = list(dict.fromkeys([*TOPN_SPLITS, *(k[2] for k in rows if k[0] == "topn")]))
    for d in TOPN_DATASETS:
        for split in splits:
            out += _topn_section(rows, d, split)
    return out


def _topn_section(rows: dict, d: str, split: str) -> list[str]:
    models = [m for m in _models(rows, "topn") if ("topn", d, split, m) in rows
              and not _rating_only(rows[("topn", d, split, m)])]
    if not models:
        return []
    any_ok = next((r for k, r in rows.items()
                   if k[:3] == ("topn", d, split) and r["status"] == "ok"), None)
    users = f", {any_ok['users']:,} users" if any_ok else ""
    unknown = (f", {any_ok['test_items_unknown']} held-out items unknown in train"
               if any_ok else "")
    ci = ("; 95 % bootstrap intervals over users"
          if any(r.get("ndcg_ci") for k, r in rows.items() if k[:3] == ("topn", d, split)) else "")
    out = ["", f"**Top-10, {d}** ({split}{users}{unknown}{ci})", "",
           "| model | precision@10 | recall@10 | nDCG@10 | coverage | fit + recommend (s, shared CPU) |",
           "|---|---:|---:|---:|---:|---:|"]
    for m in models:
        r = rows[("topn", d, split, m)]
        if r["status"] != "ok":
            out.append(f"| {m} | {r['status']} | | | | |")
            continue
        name = f"{m} ({_tuned_text(r['tuned'])})" if r.get("tuned") else m
        out.append(f"| {name} | {with_ci(r, 'precision')} | {with_ci(r, 'recall')} | "
                   f"{with_ci(r, 'ndcg')} | {_f(r['coverage'])} | "
                   f"{r['fit_s'] + r['recommend_s']:.1f} |")
    return out


def _published_table(rows: dict) -> list[str]:
    pub = [r for k, r in rows.items() if k[0] == "published"]
    if not pub:
        return []
    out = ["", "**Published figures** (Surprise, ML-100K, 5-fold, RMSE / MAE)", "",
           "| model | published | measured, Surprise's procedure | measured, u1-u5 (this protocol) |",
           "|---|---:|---:|---:|"]
    for r in pub:
        ours = rows.get(("rating", "ml-100k", "u1-u5", r["model"]))
        measured = _cell(r, lambda r: f"{_f(r['rmse'])} / {_f(r['mae'])}")
        folds = _cell(ours, lambda o: f"{_f(o['rmse'])} / {_f(o['mae'])}")
        out.append(f"| {r['model']} | {_f(r.get('published_rmse'))} / {_f(r.get('published_mae'))} | "
                   f"{measured} | {folds} |")
    out += ["", "Surprise's procedure: 5 random folds of u.data (KFold(random_state=0)) and "
            "clipped predictions; this protocol: ML-100K's own u1..u5 folds, unclipped."]
    for (model, split), (value, source) in FOLD_FIGURES.items():
        fold = rows.get(("rating", "ml-100k", split, model))
        if fold is not None and fold["status"] == "ok":
            out.append(f"On fold {split} alone, {model} measures RMSE {fold['rmse']:.4f}; "
                       f"published {value} ({source}).")
    return out


def _skips(rows: dict) -> list[str]:
    """One line per (status, reason), naming the models and the tasks it applies to."""
    groups: dict[tuple[str, str], dict[str, set]] = {}
    for k, r in rows.items():
        if r["status"] != "ok":
            by_model = groups.setdefault((r["status"], r.get("reason", "")), {})
            by_model.setdefault(k[3], set()).add(k[0] if k[0] != "topn" else "top-N")
    if not groups:
        return []
    out = ["", "Not measured:", ""]
    for (status, why), by_model in groups.items():
        tasks = sorted(set().union(*by_model.values()))
        out.append(f"- {status} ({', '.join(tasks)}): {', '.join(by_model)}: {why}")
    return out


def quality_markdown(paths: Iterable[str | os.PathLike]) -> str:
    """The quality tables of the given results files, one section per machine."""
    docs = [(Path(p), load_document(p)) for p in paths]
    if not docs:
        return ""
    parts = ["## Quality", ""]
    for mid in dict.fromkeys(d["machine_id"] for _, d in docs):
        mine = [(p, d) for p, d in docs if d["machine_id"] == mid]
        newest = max(mine, key=lambda pd: pd[1]["created"])[1]
        commits = sorted({(d.get("git") or {}).get("commit", "?")[:7] for _, d in mine})
        parts += [f"### {mid}", "",
                  f"{newest['machine'].get('cpu_model', '?')}; files "
                  + ", ".join(f"`{p.name}`" for p, _ in mine)
                  + f"; commit {', '.join(commits)}; newest {newest['created']}.", ""]
        rows = _merge(mine)
        parts += _rating_table(rows) + _published_table(rows) + _topn_table(rows) + _skips(rows)
        old_rule = [p.name for p, d in mine if any(r["task"] == "topn" for r in d["rows"])
                    and "seeded shuffle" not in (d.get("protocol") or "")]
        if old_rule:
            parts += ["", "In " + ", ".join(f"`{n}`" for n in old_rule) + ", leave-last-out "
                      "broke equal timestamps by the larger item id, not by the seeded "
                      "shuffle of today's protocol (bench/README.md, Quality)."]
        parts.append("")
    return "\n".join(parts)


def report_sections(out: Path) -> list[str]:
    """The quality tables (``recsys-fast eval``) of every machine folder under ``out``, as
    lines for :func:`recsys_fast.harness.report.write_report`'s ``extra_sections``."""
    from recsys_fast.results_store import NOT_MACHINES, QUALITY_PREFIX

    files = sorted(p for p in Path(out).glob(f"*/{QUALITY_PREFIX}*.json")
                   if p.parent.name not in NOT_MACHINES)
    text = quality_markdown(files) if files else ""
    return ["", text] if text else []


# kernel -> (task, model, metric) whose quality the report's summary shows beside its speed
SUMMARY_MODELS = {
    "knn_recommend": ("topn", "item-knn-cosine-k50", "ndcg"),
    "cf_fixed_recommend": ("topn", "fixed-item-k50", "ndcg"),
    "cf_course_user": ("rating", "course-user", "rmse"),
    "cf_course_item": ("rating", "course-item", "rmse"),
    "knn_predict": ("rating", "fixed-item-k40", "rmse"),
}
# scale -> (data set, rating split, top-N split)
SUMMARY_DATA = {"100k": ("ml-100k", "ua", "leave-last-out"),
                "1m": ("synthetic-1m", None, "leave-last-out")}


def summary_cells(out: Path):
    """``(machine, kernel, scale) -> text``: the quality of the model each speed kernel runs,
    from the quality files of ``out``'s machine folders (for the report's summary table)."""
    from recsys_fast.results_store import NOT_MACHINES, QUALITY_PREFIX

    by_machine: dict[str, dict] = {}
    for p in sorted(Path(out).glob(f"*/{QUALITY_PREFIX}*.json")):
        if p.parent.name not in NOT_MACHINES:
            by_machine.setdefault(p.parent.name, []).append((p, load_document(p)))
    merged = {m: _merge(docs) for m, docs in by_machine.items()}

    def cell(machine: str, kernel: str, scale: str) -> str:
        if kernel not in SUMMARY_MODELS or scale not in SUMMARY_DATA:
            return ""
        task, model, metric = SUMMARY_MODELS[kernel]
        dataset, rating_split, topn_split = SUMMARY_DATA[scale]
        split = rating_split if task == "rating" else topn_split
        row = merged.get(machine, {}).get((task, dataset, split, model))
        if row is None or row["status"] != "ok":
            return ""
        name = "nDCG@10" if metric == "ndcg" else "RMSE"
        return f"{name} {with_ci(row, metric)} ({model}, {dataset} {split})"

    return cell
