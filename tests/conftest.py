"""Shared fixtures: a seeded rng and the real data sets (skipped when absent).

Real data lives outside the project (its licences forbid redistribution). Point
``RECSYS_FAST_SHARED`` at a folder holding ``ml-100k/``, ``ml-latest-small/``,
``retail-sample-data/``, ``tmdb-5000-movies/``, ``movies-dataset/``, ``archives/``; by default
``../shared/datasets`` next to the checkout is used when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    env = os.environ.get("RECSYS_FAST_SHARED")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def real_path(name: str) -> Path:
    """Path of a real data set folder, or skip the test when it is absent."""
    p = shared_root() / name
    if not p.exists():
        pytest.skip(f"real data set {name!r} not found under {shared_root()} (set RECSYS_FAST_SHARED)")
    return p


def clone_with_slower_weighted_rating(tmp_path: Path, extra: str, message: str) -> Path:
    """A clone of this repository with one extra commit that runs ``extra`` (a statement) at
    the start of every ``weighted_rating_chart`` call: an injected regression for the gates."""
    import subprocess

    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    target = repo / "recsys_fast" / "kernels" / "popularity.py"
    target.write_text(target.read_text() + (
        "\n\n_fast_chart = weighted_rating_chart\n\n\n"
        "def weighted_rating_chart(*args, **kwargs):  # an injected regression\n"
        f"    {extra}\n"
        "    return _fast_chart(*args, **kwargs)\n"))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", message], check=True)
    return repo


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    return real_path("ml-100k")


@pytest.fixture(scope="session")
def retail_csv() -> Path:
    return real_path("retail-sample-data") / "sample-data.csv"


@pytest.fixture(scope="session")
def tmdb_csv() -> Path:
    return real_path("tmdb-5000-movies") / "tmdb_5000_movies.csv"


@pytest.fixture(scope="session")
def ml_latest_small_dir() -> Path:
    return real_path("ml-latest-small")


@pytest.fixture(scope="session")
def shared_archives() -> Path:
    return real_path("archives")


CLUSTER_FIXTURES = {"cluster", "client", "external_scheduler"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Skip everything when ``KERAS_BACKEND`` names an absent package (see
    :func:`_keras_backend_missing`); skip tests marked ``gpu`` without a usable CUDA device
    (device, not import). The simulated GPU does not count: the ``simulated`` parameters run
    those paths already. Tests that start a dask cluster (its fixtures) join the slow set
    (README, "Tests")."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    reason = _keras_backend_missing()
    if reason:
        mark = pytest.mark.skip(reason=reason)
        for item in items:
            item.add_marker(mark)
        return
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    from recsys_fast.backend import gpu_available, gpu_unavailable_reason, is_simulated

    if gpu_available():
        from recsys_fast.backend import get_backend

        if not is_simulated(get_backend("gpu")):
            return
        why = "the GPU is simulated (RECSYS_FAST_SIMULATE_GPU)"
    else:
        why = gpu_unavailable_reason()
    skip = pytest.mark.skip(reason=f"no usable GPU: {why}")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def _keras_backend_missing() -> str | None:
    """Why the configured Keras backend cannot load (``KERAS_BACKEND`` names an absent
    optional package), or ``None``: such a run skips with the reason instead of erroring."""
    import importlib.util

    name = os.environ.get("KERAS_BACKEND", "").strip()
    module = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}.get(name)
    if module and importlib.util.find_spec(module) is None:
        return f"KERAS_BACKEND={name} but {module} is not installed (optional: pip install {module})"
    return None
