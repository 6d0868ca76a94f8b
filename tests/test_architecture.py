"""The house stays as built: layer contracts (import-linter, ``pyproject.toml``), no import
cycle (function-local imports included), kernels that never branch on a backend's name, and a
harness split by concern."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "recsys_fast"


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
    cli = Path(sys.executable).with_name("lint-imports")
    if not cli.exists():
        pytest.skip(f"no lint-imports beside {sys.executable}")
    out = subprocess.run([str(cli), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_no_import_cycle():
    """grimp sees function-local imports too: a cycle hidden inside a function still counts."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (dev extra)")
    graph = grimp.build_graph("recsys_fast", include_external_packages=False, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        modules = set(edges)

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert _cycles(Graph()) == [["a", "b", "c"]]


BACKEND_NAME = re.compile(r"""\.name\s*[!=]=\s*["'](cpu|gpu|dask)["']|\bis_dask\(""")


@pytest.mark.parametrize("layer", ["kernels", "models"])
def test_no_kernel_branches_on_a_backend_name(layer):
    """Kernels ask a Backend for capabilities (``host``, ``dense_share``) and the driver
    registry for task drivers; only the backend layer knows names."""
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
            for p in sorted((PACKAGE / layer).rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if BACKEND_NAME.search(line)]
    assert hits == []


def test_harness_top_level_is_small():
    modules = sorted(p.name for p in (PACKAGE / "harness").iterdir()
                     if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    assert len(modules) <= 10, modules
