"""Time and efficiency vs workers from a ``dask_scaling_*.json`` study (``dask_scaling.py``).

    python bench/scaling/plot.py results/<machine>/studies/dask_scaling_<UTC>.json

Writes the PNG next to the JSON (same name, ``.png``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plot_scaling(path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    d = json.loads(path.read_text())
    strong = next(iter(d["strong"].values()))
    weak_rows = [strong["dask"][0]] + [r for row in d["weak"].values() for r in row["dask"]]
    weak_rows[0] = {**weak_rows[0], "efficiency": 1.0}
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
    w_s = [r["workers"] for r in strong["dask"]]
    ax_t.plot(w_s, [r["time_s"] for r in strong["dask"]], "o-",
              label=f"strong: {strong['data']} fixed")
    ax_t.plot([r["workers"] for r in weak_rows], [r["time_s"] for r in weak_rows], "s-",
              label=f"weak: {strong['data']} users x workers")
    cores = d["environment"]["machine"].get("affinity_cores", "?")
    ax_t.axhline(strong["single_process_s"], color="grey", ls="--",
                 label=f"single process ({cores} cores), {strong['data']}")
    ax_t.set(xlabel="dask workers (1 thread each)", ylabel="median time per call (s)",
             title=f"cosine_topk item-item k={d['k']}", xticks=w_s)
    ax_t.set_ylim(bottom=0)
    ax_t.legend(fontsize=8)
    ax_e.plot(w_s, [r["efficiency"] for r in strong["dask"]], "o-", label="strong T1/(w Tw)")
    ax_e.plot([r["workers"] for r in weak_rows], [r["efficiency"] for r in weak_rows], "s-",
              label="weak T1/Tw")
    if strong.get("threads"):
        ax_e.plot([r["threads"] for r in strong["threads"]],
                  [r["efficiency"] for r in strong["threads"]], "^--", color="grey",
                  label="single process, threads (this machine's ceiling)")
    ax_e.axhline(1.0, color="grey", ls=":", label="ideal")
    ax_e.set(xlabel="dask workers (1 thread each) / threads", ylabel="parallel efficiency",
             title="efficiency vs 1 worker", xticks=w_s, ylim=(0, 1.2))
    ax_e.legend(fontsize=8)
    cpu = d["environment"]["machine"].get("cpu_model", "")
    fig.suptitle(f"{cpu}, {d['date'][:16]} UTC; shared machine, load avg "
                 f"{d['loadavg_before'][0]:.1f} -> {d['loadavg_after'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(plot_scaling(arg))
