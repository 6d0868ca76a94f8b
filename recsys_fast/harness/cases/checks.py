"""Equivalence checks used by the cases: dense arrays, top-k neighbour lists, ranked lists."""

from __future__ import annotations

import numpy as np

from recsys_fast.harness.cases.case import Verdict


def to_host(x):
    from recsys_fast.backend import to_host as _to_host  # lazy: keeps case registration cheap

    return _to_host(x)


def _issparse(x) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(x)


def _host_dense(x) -> np.ndarray:
    x = to_host(x)
    return x.toarray() if _issparse(x) else np.asarray(x)


def compare_dense(got, ref, *, rtol: float, atol: float, against: str) -> Verdict:
    """``equal`` if ``got`` matches ``ref`` within tolerances (NaN == NaN, inf == inf)."""
    got, ref = _host_dense(got), _host_dense(ref)
    if got.shape != ref.shape:
        return Verdict(f"mismatch: shape {got.shape} vs reference {ref.shape}", against)
    close = np.isclose(got, ref, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return Verdict("equal", against)
    bad = np.argwhere(~close)
    where = tuple(int(i) for i in bad[0])
    diff = np.abs(got.astype(np.float64) - ref)
    diff = diff[np.isfinite(diff)]
    worst = f"{diff.max():.3g}" if diff.size else "non-finite"
    return Verdict(f"mismatch: {len(bad)} entries differ (max abs diff {worst}; first at "
                   f"{where}: {got[where]!r} vs {ref[where]!r}; rtol={rtol}, atol={atol})",
                   against)


def exact_cosine_rows(X, rows: np.ndarray) -> np.ndarray:
    """True cosine similarities (float64) of ``rows`` of X with every row of X; zero rows -> 0."""
    import scipy.sparse

    X = X.astype(np.float64).tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Xn = scipy.sparse.diags(inv) @ X
    return np.asarray((Xn[rows] @ Xn.T).todense())


def compare_topk(got, ref_rows: np.ndarray, rows: np.ndarray, k: int, *, include_self: bool,
                 tol: float, against: str) -> Verdict:
    """Tie-aware check of a top-k neighbour matrix against exact similarities.

    For each checked row: the kept similarities, sorted, must equal the top ones of the exact
    row (self excluded unless ``include_self``; only positive similarities count) and each kept
    neighbour's similarity must equal its exact value; the row keeps ``min(k, #positive)``
    entries. Same neighbour sets -> ``equal``; different sets with equal values -> ``equal up
    to ties``.
    """
    got = to_host(got).tocsr()
    ties = False
    for r, row in zip(rows, ref_rows, strict=True):
        exact = np.array(row, dtype=np.float64)
        if not include_self:
            exact[r] = -np.inf
        lo, hi = got.indptr[r], got.indptr[r + 1]
        cols, vals = got.indices[lo:hi], got.data[lo:hi].astype(np.float64)
        positive = np.flatnonzero(exact > 0)
        # similarities within tol of 0 may be kept or not (float32 rounding)
        lo, want = min(k, int((exact > tol).sum())), min(k, len(positive))
        if not lo <= len(cols) <= want:
            return Verdict(f"mismatch: row {r} keeps {len(cols)} neighbours, expected {want}",
                           against)
        want = len(cols)
        if not include_self and r in set(cols.tolist()):
            return Verdict(f"mismatch: row {r} lists itself", against)
        if not np.allclose(vals, exact[cols], rtol=0, atol=tol):
            j = int(cols[np.argmax(np.abs(vals - exact[cols]))])
            return Verdict(f"mismatch: row {r}, neighbour {j}: {vals[cols == j][0]:.6g} vs "
                           f"exact {exact[j]:.6g}", against)
        top = np.sort(exact[positive])[::-1][:want]
        if not np.allclose(np.sort(vals)[::-1], top, rtol=0, atol=tol):
            return Verdict(f"mismatch: row {r} misses a top-{k} neighbour (kept min "
                           f"{vals.min():.6g}, exact k-th {top[-1]:.6g})", against)
        ref_set = set(positive[np.argsort(-exact[positive], kind="stable")[:want]].tolist())
        ties = ties or set(cols.tolist()) != ref_set
    return Verdict("equal up to ties" if ties else "equal", against)


def sample_rows(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row sample (all rows when ``n <= size``), deterministic."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def compare_ranked_lists(got: dict, ref: dict, *, tol: float, against: str) -> Verdict:
    """Tie-aware check of ``{key: [(score, id), ...]}`` lists (best first), e.g. TF-IDF top-k.

    Scores must agree position by position; ids may differ only where scores tie (within tol).
    """
    if set(got) != set(ref):
        missing = sorted(set(ref) - set(got), key=str)[:5]
        return Verdict(f"mismatch: keys differ (missing e.g. {missing})", against)
    ties = False
    for key, want in ref.items():
        have = got[key]
        if len(have) != len(want):
            return Verdict(f"mismatch: {key!r} has {len(have)} entries, reference "
                           f"{len(want)}", against)
        s_have = np.array([s for s, _ in have], dtype=np.float64)
        s_want = np.array([s for s, _ in want], dtype=np.float64)
        if not np.allclose(s_have, s_want, rtol=0, atol=tol):
            i = int(np.argmax(np.abs(s_have - s_want)))
            return Verdict(f"mismatch: {key!r} position {i}: score {s_have[i]:.6g} vs "
                           f"{s_want[i]:.6g}", against)
        if [i for _, i in have] != [i for _, i in want]:
            # ids may only differ inside a group of tied scores, or in the last group (tied
            # with items just below the cut)
            for i, ((_, a), (_, b)) in enumerate(zip(have, want, strict=True)):
                tied = (np.abs(s_want - s_want[i]) <= tol).sum() > 1
                at_cut = s_want[i] - s_want[-1] <= tol
                if a != b and not (tied or at_cut):
                    return Verdict(f"mismatch: {key!r} position {i}: id {a!r} vs {b!r} "
                                   f"with untied score {s_want[i]:.6g}", against)
            ties = True
    return Verdict("equal up to ties" if ties else "equal", against)
