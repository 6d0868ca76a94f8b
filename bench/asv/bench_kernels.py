"""asv: one benchmark class per registered kernel, generated from the registry (itself generated
from the implementation adapters), so a new kernel or implementation needs no edit here.

Each class is named after its kernel in CamelCase (``cosine_topk`` -> ``CosineTopk``), with
``params = (impl, backend, scale)`` from :func:`common.params_for` and a ``version`` that changes
when an implementation of the kernel or a peer library's version changes (asv then starts that
benchmark's history afresh instead of comparing different code).
"""

from __future__ import annotations

import hashlib

from recsys_fast.harness.cases.registry import default_registry

from .common import _KernelBenchmark, params_for


def class_name(kernel: str) -> str:
    return "".join(part.capitalize() for part in kernel.split("_"))


def version_of(kernel: str) -> str:
    """A digest of the kernel's implementations and their versions (recsys-fast's or the peer
    library's)."""
    from recsys_fast.optional import version_of

    text = "\n".join(sorted(f"{c.key} {version_of(c.requires)}"
                            for c in default_registry().select(kernels=[kernel])))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


for _kernel in default_registry().kernels:
    globals()[class_name(_kernel)] = type(class_name(_kernel), (_KernelBenchmark,), {
        "kernel": _kernel, "params": params_for(_kernel), "version": version_of(_kernel),
        "__module__": __name__, "__doc__": default_registry().kernels[_kernel]})
del _kernel
