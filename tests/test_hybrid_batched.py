"""The hybrids' batched recommend equals the naive composition (random inputs and ML-100K)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from recsys_fast.kernels import FixedCF, MixedHybrid, SwitchingHybrid
from recsys_fast.kernels import hybrid as hybrid_module
from recsys_fast.kernels.hybrid import top_n_ordered
from recsys_fast.naive import hybrid as naive


def _random_case(seed: int, with_content: bool):
    rng = np.random.default_rng(seed)
    n_users, n_items = 70, 45
    R = (rng.random((n_users, n_items)) < 0.15) * rng.integers(1, 6, (n_users, n_items))
    R[3] = 0
    R[3, 2] = 4  # a cold user
    R[:, 5] = 0  # an item nobody rated
    R[7] = 0  # a user with no rating at all
    content = None
    if with_content:
        content = scipy.sparse.random(n_items, n_items, density=0.1, random_state=seed,
                                      format="csr")
        content.data = np.round(content.data, 1)  # tied similarities, so tied estimates
    return R.astype(float), content


def _assert_same(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_content", [True, False])
@pytest.mark.parametrize("dense", [True, False], ids=["dense", "sparse"])
def test_batched_hybrids_equal_the_naive_composition(seed, with_content, dense):
    R, content = _random_case(seed, with_content)
    cf = FixedCF("item", k=6, dtype=np.float64)
    switching = SwitchingHybrid(cf, content=content, min_ratings=3).fit(R)
    mixed = MixedHybrid(cf, content=content).fit(R)
    W = cf.neighbours_.toarray() if dense else cf.neighbours_
    C = None if content is None else (content.toarray() if dense else content)
    inp = naive.prepare(R, W, C)
    users = np.arange(R.shape[0])
    for n in (1, 8, R.shape[1]):
        _assert_same(switching.recommend_users(users, n),
                     naive.switching_recommend(inp, users, n, min_ratings=3))
        _assert_same(mixed.recommend_users(users, n), naive.mixed_recommend(inp, users, n))


def test_one_user_blocks_and_single_calls_agree(monkeypatch):
    R, content = _random_case(4, True)
    hyb = SwitchingHybrid(FixedCF("item", k=6, dtype=np.float64), content=content,
                          min_ratings=3).fit(R)
    users = np.array([9, 3, 7, 3, 0])
    whole = hyb.recommend_users(users, 6)
    monkeypatch.setattr(hybrid_module, "BLOCK_BYTES", 1)  # one user per block
    _assert_same(hyb.recommend_users(users, 6), whole)
    one = hyb.recommend(3, 6)
    np.testing.assert_array_equal(one.items, whole[0][1])
    assert one.sources == [hybrid_module.SOURCES[s] if s >= 0 else "" for s in whole[2][1]]


def test_top_n_ordered_breaks_ties_by_item_also_at_the_cut():
    P = np.array([[1.0, 3.0, 2.0, 2.0, 2.0, -np.inf],
                  [-np.inf, 5.0, -np.inf, -np.inf, -np.inf, -np.inf]])
    items, scores = top_n_ordered(P.copy(), 3)
    np.testing.assert_array_equal(items, [[1, 2, 3], [1, -1, -1]])
    np.testing.assert_array_equal(scores[0], [3.0, 2.0, 2.0])
    assert np.isnan(scores[1, 1:]).all()
    items, _ = top_n_ordered(P.copy(), 6)
    np.testing.assert_array_equal(items[0], [1, 2, 3, 4, 0, -1])


def test_bad_users_are_named():
    R, content = _random_case(0, True)
    hyb = MixedHybrid(FixedCF("item", k=6, dtype=np.float64), content=content).fit(R)
    with pytest.raises(IndexError, match=r"user indices \[70\]"):
        hyb.recommend_users([0, 70], 3)
    with pytest.raises(TypeError, match="integer"):
        hyb.recommend_users([0.5], 3)
    with pytest.raises(ValueError, match="n must be"):
        hyb.recommend_users([0], 0)


def test_hybrid_harness_check_catches_a_changed_list():
    from recsys_fast.harness.cases.impls_hybrid import compare_lists

    items = np.array([[3, 1, 2]])
    scores = np.array([[4.5, 4.0, 3.5]])
    sources = np.array([[0, 1, 2]], dtype=np.int8)
    ref = (items, scores, sources)
    assert compare_lists(ref, ref, "x").text == "equal"
    assert compare_lists((items[:, ::-1], scores, sources), ref, "x").text.startswith("mismatch")
    assert compare_lists((items, scores, sources[:, ::-1]), ref, "x").text.startswith("mismatch")
    assert compare_lists((items, scores + 1e-6, sources), ref, "x").text.startswith("mismatch")


def test_batched_hybrids_equal_the_naive_composition_on_ml100k(ml100k_dir):
    from recsys_fast.data.movielens import load_ml100k
    from recsys_fast.quality.cold_start import content_similarity, content_text
    from recsys_fast.quality.splits import encode

    inter = load_ml100k(ml100k_dir)
    enc = encode(inter.ratings, inter.ratings.iloc[:1])
    R = enc.train.astype(np.float64)
    content = content_similarity(content_text(inter.items), enc.item_ids)
    cf = FixedCF("item", k=50, dtype=np.float64)
    switching = SwitchingHybrid(cf, content=content).fit(R)
    mixed = MixedHybrid(cf, content=content).fit(R)
    inp = naive.prepare(R, cf.neighbours_, content)  # sparse: the naive loop is slow
    users = np.arange(0, R.shape[0], 60)
    _assert_same(switching.recommend_users(users, 10),
                 naive.switching_recommend(inp, users, 10, min_ratings=5))
    _assert_same(mixed.recommend_users(users, 10), naive.mixed_recommend(inp, users, 10))
