"""The add-a-kernel recipe of ``bench/README.md``, proved: a new kernel written as its files
say (the kernel module on the shared core, its naive reference, the adapter module with
``FAMILIES``), in a throwaway package, runs through the unchanged harness next to the
project's kernels, checked equal to its reference, on every array backend registered."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from recsys_fast.harness.cases.registry import CASE_MODULES, build_registry
from recsys_fast.harness.run.bench import run_bench
from recsys_fast.harness.run.runner import RunSettings

KERNEL_MODULE = '''
"""row_norms: the L2 norm of each row of a sparse matrix (the recipe's example kernel)."""
import numpy as np

from recsys_fast.backend import get_backend, to_host
from recsys_fast.kernels.core import as_csr, canonical, inverse_norms


def row_norms(X, *, backend="cpu"):
    be = get_backend(backend)
    X = canonical(as_csr(X, be))
    inv = inverse_norms(X, be)
    out = be.xp.where(inv > 0, 1.0 / be.xp.where(inv > 0, inv, 1.0), 0.0)
    return np.asarray(to_host(out))


def row_norms_naive(X):
    """The reference: one Python loop over the rows of a dense copy."""
    D = np.asarray(X.todense(), dtype=np.float64)
    return np.array([sum(v * v for v in row) ** 0.5 for row in D])
'''

ADAPTER_MODULE = '''
"""Implementations of row_norms: naive and optimised."""
import numpy as np

from recsys_fast.harness.cases import casedata
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict

KERNEL = "row_norms"


class RowNormsImpl(Adapter):
    kernel = KERNEL
    description = "L2 norm of each user's ratings"

    def setup(self, ctx, scale):
        return casedata.train_csr(ctx, scale), scale

    def check(self, ctx, state, result):
        ref = ctx.naive_reference(KERNEL, state[1])
        ok = ref is not None and np.allclose(result, ref, rtol=1e-12)
        return Verdict("equal" if ok else "mismatch: norms differ", "naive")

    def memory_estimate(self, spec):
        return 8 * spec.n_users * spec.n_items

    def examples(self, state):
        return state[0].shape[0]


class NaiveRowNorms(RowNormsImpl):
    name = role = "naive"
    note = "Python loop over dense rows"
    scales = ("tiny",)

    def run(self, state):
        from recipe_demo.row_norms import row_norms_naive

        return row_norms_naive(state[0])


class OptimisedRowNorms(RowNormsImpl):
    name = role = "optimised"
    note = "bincount of squares on the shared core"
    backends = ("cpu", "gpu")
    scales = ("tiny",)

    def run(self, state):
        from recipe_demo.row_norms import row_norms

        return row_norms(state[0], backend=self.backend)


FAMILIES = (RowNormsImpl,)
'''


@pytest.fixture
def recipe_package(tmp_path, monkeypatch):
    pkg = tmp_path / "recipe_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "row_norms.py").write_text(textwrap.dedent(KERNEL_MODULE))
    (pkg / "impls_row_norms.py").write_text(textwrap.dedent(ADAPTER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "recipe_demo.impls_row_norms"
    for name in [m for m in sys.modules if m.startswith("recipe_demo")]:
        del sys.modules[name]


@pytest.fixture
def no_gpu(monkeypatch):
    from recsys_fast.harness.run import runner

    monkeypatch.setattr(runner, "gpu_available", lambda: False)


def test_a_new_kernel_is_its_files_and_one_registry_line(recipe_package, monkeypatch, no_gpu):
    reg = build_registry((*CASE_MODULES, recipe_package))
    assert "row_norms" in reg.kernels and "cosine_topk" in reg.kernels
    assert {c.key for c in reg.select(["row_norms"])} == {
        "row_norms/naive/cpu", "row_norms/optimised/cpu", "row_norms/optimised/gpu"}
    monkeypatch.setenv("RECSYS_FAST_MACHINE_ID", "test-machine")
    data, _ = run_bench(scales=["tiny"], kernels=["row_norms"], registry=reg, out_dir=None,
                        gemm_n=64, progress=False, isolate=False,
                        settings=RunSettings(repeat=2, max_time=0.5))
    rows = {(r["impl"], r["backend"]): r for r in data["cases"]}
    assert rows[("naive", "cpu")]["status"] == "ok"
    assert rows[("optimised", "cpu")]["status"] == "ok"
    assert rows[("optimised", "cpu")]["verdict"] == "equal"
    assert rows[("optimised", "cpu")]["checked_against"] == "naive"
    assert rows[("optimised", "gpu")]["status"] == "skipped"  # no GPU: a skip, with its reason
    assert "gpu" in rows[("optimised", "gpu")]["skipped_reason"]


def test_the_example_kernel_equals_its_reference_on_random_input(recipe_package):
    import scipy.sparse as sp
    from recipe_demo.row_norms import row_norms, row_norms_naive

    X = sp.random(40, 30, density=0.2, random_state=np.random.RandomState(1), format="csr")
    np.testing.assert_allclose(row_norms(X), row_norms_naive(X), rtol=1e-12)
