"""Optional packages, in one vocabulary for benchmark adapters and quality models.

Both declare ``requires`` (import names of optional third-party packages) and, where ``pip
install <distribution>`` is not the whole story, ``install_note`` (one line: what to run, or
the pip error it meets). From those two this module gives the skip reason, the install hint
and the version of what runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from importlib import metadata

# import name -> distribution name, where they differ (for versions and pip hints)
DISTRIBUTIONS = {"sklearn": "scikit-learn", "surprise": "scikit-surprise",
                 "tensorflow_recommenders": "tensorflow-recommenders", "tf_keras": "tf-keras",
                 "sparse_dot_topn": "sparse-dot-topn"}


def distribution(import_name: str) -> str:
    """The pip distribution that provides ``import_name``."""
    return DISTRIBUTIONS.get(import_name, import_name)


def missing(requires: Iterable[str]) -> list[str]:
    """The import names in ``requires`` that cannot be found here."""
    out = []
    for name in requires:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def install_hint(requires: Iterable[str], install_note: str = "") -> str:
    """``install_note``, else ``pip install`` of the distributions behind ``requires``."""
    return install_note or f"pip install {' '.join(map(distribution, requires))}"


def skip_reason(requires: Iterable[str], install_note: str = "") -> str | None:
    """Why something needing ``requires`` cannot run here, with the hint; None when it can."""
    gone = missing(requires)
    if not gone:
        return None
    return (f"optional package {', '.join(gone)} not installed "
            f"({install_hint(gone, install_note)})")


def version_of(requires: Iterable[str]) -> str:
    """``"<distribution> <version>"`` of the first installed package of ``requires``, else
    recsys-fast's own (what computes the result)."""
    for name in requires:
        try:
            return f"{distribution(name)} {metadata.version(distribution(name))}"
        except metadata.PackageNotFoundError:
            continue
    from recsys_fast import __version__

    return f"recsys-fast {__version__}"
