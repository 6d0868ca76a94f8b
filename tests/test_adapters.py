"""Conformance of every implementation adapter (``recsys_fast.harness.cases.adapter``).

Each concrete adapter: is well formed (kernel, name, role, backends, scales, setup/run), names
its version, turns into a registry case that says what it declares; a declared optional package
that is missing makes its case skipped with the pip hint; and, run at the tiny scale, it computes
its family's function: its verdict against the naive reference (or exact float64 where the family
checks that way) is "equal" or "equal up to ties", or "n/a" where it declares itself unchecked.
"""

from __future__ import annotations

import pytest

from recsys_fast.harness.cases import adapter
from recsys_fast.harness.cases.impls_similarity import TopKImpl
from recsys_fast.harness.cases.registry import CASE_MODULES, OURS, Registry, default_registry
from recsys_fast.harness.run import runner
from recsys_fast.harness.run.context import CaseContext
from recsys_fast.harness.run.runner import RunSettings
from recsys_fast.optional import distribution

FAST = RunSettings(repeat=1, warmup=1, max_time=0.5)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(runner, "gpu_available", lambda: False)


def _adapters() -> list[type[adapter.Adapter]]:
    import importlib

    return [cls for m in CASE_MODULES for fam in importlib.import_module(m).FAMILIES
            for cls in adapter.concrete(fam)]


ADAPTERS = _adapters()


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda c: f"{c.kernel}/{c.name}")
def test_adapter_is_well_formed(cls):
    adapter.validate(cls)
    assert cls.note, "one line saying what it runs"
    assert cls.version().split()[0] in ("recsys-fast", *map(distribution, cls.requires))
    for backend in cls.backends:
        case = cls(backend).case()
        assert (case.kernel, case.impl, case.backend, case.role) == (
            cls.kernel, cls.name, backend, cls.role)
        assert case.requires == cls.requires
        assert (case.check is None) == (cls.role == "naive" or not cls.checked)


def test_registry_is_generated_from_the_adapters():
    reg = default_registry()
    want = {f"{c.kernel}/{c.name}/{b}" for c in ADAPTERS for b in c.backends}
    assert {c.key for c in reg} == want
    for kernel in reg.kernels:
        impls = reg.impls(kernel)
        ours = [i for i in impls if i in OURS]
        assert impls[: len(ours)] == ours  # naive and optimised first, then peers


def test_every_peer_gets_its_own_plot_style():
    impls = default_registry().impls()
    styles = adapter.styles(impls)
    peers = [styles[i] for i in impls if i not in OURS]
    assert len(set(peers)) == len(peers) and all(line == "--" for _, line in peers)


def test_machine_record_lists_every_peer_library():
    from recsys_fast.harness.run.machine import libraries

    needed = {distribution(r) for c in ADAPTERS for r in c.requires}
    assert needed <= set(libraries())


def test_malformed_adapters_are_rejected():
    class NoRun(TopKImpl):
        name = "norun"
        note = "x"

    class WrongRole(TopKImpl):
        name, role, note = "fast", "optimised", "x"

        def run(self, st):
            return None

    class BadBackend(TopKImpl):
        name, backends, note = "tpu-thing", ("tpu",), "x"

        def run(self, st):
            return None

    for cls, word in ((NoRun, "run"), (WrongRole, "named 'optimised'"), (BadBackend, "tpu")):
        with pytest.raises(TypeError, match=word):
            adapter.validate(cls)
    for cls in (NoRun, WrongRole, BadBackend):  # keep them out of the family for other tests
        cls.name = ""


def test_a_missing_optional_package_is_a_skip_with_the_install_hint(no_gpu):
    class NeedsPkg(TopKImpl):
        name, note = "needs_pkg", "a peer whose library is not installed"
        requires = ("no_such_peer_pkg",)

        def run(self, st):
            raise AssertionError("must not run")

    try:
        assert NeedsPkg.missing() == ["no_such_peer_pkg"]
        reg = Registry()
        reg.add(NeedsPkg().case())
        res = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)[0]
        assert res.status == "skipped"
        assert "no_such_peer_pkg not installed" in res.skipped_reason
        assert "pip install no_such_peer_pkg" in res.skipped_reason
    finally:
        NeedsPkg.name = ""


def test_an_unavailable_runtime_is_a_skip_before_setup(no_gpu):
    class NeedsRuntime(TopKImpl):
        name, note = "needs_runtime", "a peer whose runtime outside Python is absent"

        @classmethod
        def unavailable(cls):
            return "no frobnicator runtime here"

        def setup(self, ctx, scale):
            raise AssertionError("must not set up")

        def run(self, st):
            raise AssertionError("must not run")

    try:
        reg = Registry()
        reg.add(NeedsRuntime().case())
        res = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)[0]
        assert (res.status, res.skipped_reason) == ("skipped", "no frobnicator runtime here")
        assert TopKImpl.unavailable() is None  # the default: nothing beyond ``requires``
    finally:
        NeedsRuntime.name = ""


# the DNN families train TensorFlow models: covered by tests/test_dnn.py and the asv smoke
CHECKED = [c for c in ADAPTERS if not c.kernel.startswith("dnn") and c.role != "naive"]


@pytest.mark.parametrize("cls", CHECKED, ids=lambda c: f"{c.kernel}/{c.name}")
def test_adapter_computes_its_familys_function_at_tiny_scale(cls, no_gpu):
    if cls.missing():
        pytest.skip(f"optional package {', '.join(cls.missing())} not installed")
    if cls.unavailable():
        pytest.skip(cls.unavailable())
    reg = default_registry()
    cases = reg.select(kernels=[cls.kernel], impls=["naive", cls.name] if "naive" in
                       reg.impls(cls.kernel) else [cls.name], backends=["cpu"])
    rows = runner.run_group(cases, "tiny", CaseContext(reg), FAST)
    row = {r.impl: r for r in rows}[cls.name]
    assert row.status == "ok", row.error
    if cls.checked and cls.same_function:
        assert row.verdict in ("equal", "equal up to ties"), (row.verdict, row.checked_against)
    else:  # not the family's function: invariants checked, compared on quality
        assert row.verdict == "n/a", (row.verdict, row.checked_against)


def test_chunkdot_peer_is_checked_against_exact_cosine(no_gpu, monkeypatch):
    """The chunkdot adapter at tiny scale: with the library when installed, else (it does not
    install beside numpy 2) with a stand-in that returns what its documentation describes (each
    row's top_k entries by cosine, the item itself included), which tests the adapter's plumbing,
    not the library."""
    import sys
    import types

    import numpy as np
    import scipy.sparse

    from recsys_fast.harness.cases.checks import exact_cosine_rows
    from recsys_fast.harness.cases.impls_similarity import ChunkdotTopK

    if ChunkdotTopK.missing():
        def cosine_similarity_top_k(X, *, top_k, **_):
            S = exact_cosine_rows(X, np.arange(X.shape[0]))
            keep = np.argsort(-S, axis=1, kind="stable")[:, :top_k]
            rows = np.repeat(np.arange(S.shape[0]), top_k)
            vals = np.take_along_axis(S, keep, axis=1).ravel()
            return scipy.sparse.csr_matrix((vals, (rows, keep.ravel())), shape=S.shape)

        fake = types.ModuleType("chunkdot")
        fake.cosine_similarity_top_k = cosine_similarity_top_k
        monkeypatch.setitem(sys.modules, "chunkdot", fake)
        monkeypatch.setattr(ChunkdotTopK, "requires", ())
    reg = Registry()
    reg.add(ChunkdotTopK().case())
    row = runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)[0]
    assert row.status == "ok", row.error
    assert row.verdict in ("equal", "equal up to ties"), row.verdict


def test_peer_recommender_check_catches_a_rated_item_and_a_bad_order():
    """The invariant check of a peer computing another function (LensKit's adapter), run on
    lists from a model that is installed here."""
    import numpy as np

    from recsys_fast.harness.cases import casedata
    from recsys_fast.harness.cases.impls_fixed_cf import N_RECOMMEND as N
    from recsys_fast.harness.cases.impls_fixed_cf import LensKitRecommend, RecommendState
    from recsys_fast.models import ImplicitItemKNN

    if ImplicitItemKNN.skip_reason():
        pytest.skip("implicit not installed")
    ctx = CaseContext(default_registry())
    adapter_ = LensKitRecommend()
    R = casedata.train_csr(ctx, "tiny", np.float32)
    st = RecommendState(ctx, "tiny", R, np.arange(min(50, R.shape[0])))
    st.model = ImplicitItemKNN("cosine", 50).fit(R)
    items, scores = st.model.recommend(st.users, N)
    assert adapter_.check(ctx, st, (items, scores)).text == "n/a"
    u = int(st.users[0])
    rated = st.R.indices[st.R.indptr[u]]
    bad = items.copy()
    bad[0, 0] = rated
    assert "rated" in adapter_.check(ctx, st, (bad, scores)).text
    flipped = scores.copy()
    flipped[0, :] = np.arange(N, dtype=float)  # ascending
    assert "best first" in adapter_.check(ctx, st, (items, flipped)).text


def test_held_out_split_removes_the_sample_and_keeps_every_user():
    import numpy as np

    from recsys_fast.harness.cases import casedata
    from recsys_fast.harness.cases.impls_predict import held_out

    ctx = CaseContext(default_registry())
    R = casedata.train_csr(ctx, "tiny", np.float32)
    train, users, items, truth = held_out(ctx, "tiny")
    assert train.nnz + truth.size == R.nnz and truth.size > 0
    assert (np.diff(train.indptr) >= np.minimum(1, np.diff(R.indptr))).all()  # nobody lost
    np.testing.assert_array_equal(np.asarray(R[users, items]).ravel(), truth)
    assert (np.asarray(train[users, items]).ravel() == 0).all()


def test_the_add_a_peer_recipe_is_one_class(no_gpu):
    """bench/README's peer recipe, proved: one subclass of a family (a name, a note, ``run``)
    becomes a checked case beside the project's, and a wrong answer fails its check."""
    import numpy as np
    import scipy.sparse

    class ScipyDenseTopK(TopKImpl):
        name, note = "recipe_peer", "scipy product and a per-row argsort (test-only peer)"

        def run(self, st):
            S = (st.X @ st.X.T).toarray()
            norms = np.sqrt(np.maximum(S.diagonal(), 1e-300))
            S = S / norms[:, None] / norms[None, :]
            np.fill_diagonal(S, 0)
            keep = np.argsort(-S, axis=1, kind="stable")[:, : st.k]
            rows = np.repeat(np.arange(S.shape[0]), st.k)
            vals = S[rows, keep.ravel()]
            out = scipy.sparse.csr_matrix((vals, (rows, keep.ravel())), shape=S.shape)
            out.data[out.data <= 0] = 0
            out.eliminate_zeros()
            return out

    class WrongTopK(ScipyDenseTopK):
        name, note = "recipe_wrong", "the same with the values halved (must fail its check)"

        def run(self, st):
            out = super().run(st)
            out.data *= 0.5
            return out

    try:
        reg = Registry()
        for cls in (ScipyDenseTopK, WrongTopK):
            adapter.validate(cls)
            reg.add(cls().case())
        rows = {r.impl: r for r in runner.run_group(reg.select(), "tiny", CaseContext(reg), FAST)}
        assert rows["recipe_peer"].status == "ok" and rows["recipe_peer"].verdict == "equal"
        assert rows["recipe_wrong"].verdict.startswith("mismatch")
    finally:
        ScipyDenseTopK.name = WrongTopK.name = ""
