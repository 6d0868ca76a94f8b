"""Drivers: where a kernel runs, resolved once from its ``backend=`` argument.

Two kinds of driver:

- **array drivers**: a :class:`recsys_fast.backend.Backend` (``"cpu"``, ``"gpu"``, the
  simulated GPU, or any Backend object), whose ``xp`` / ``sparse`` namespaces and capabilities
  (``host``, ``dense_share``, ...) the kernel's own code runs on;
- **task drivers**: a name (``"dask"``) under which a module registers whole implementations
  of public kernels (:func:`register`), run instead of the array code: they take the same
  arguments and return the same typed results.

A public kernel asks :func:`task_impl` once; None means an array driver, which
:func:`array_backend` gives. Kernels never compare backend names. A new task driver is one
module that registers its implementations and is imported by :mod:`recsys_fast.kernels`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recsys_fast.backend import CPU, Backend, get_backend

_TASK: dict[str, dict[str, Callable]] = {}


def register(kernel: str, driver: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` implements the public kernel ``kernel`` on the task driver ``driver``."""

    def deco(fn: Callable) -> Callable:
        _TASK.setdefault(driver, {})[kernel] = fn
        return fn

    return deco


def is_task_driver(backend: Any) -> bool:
    return isinstance(backend, str) and backend in _TASK


def task_impl(kernel: str, backend: Any) -> Callable | None:
    """The task driver's implementation of ``kernel`` when ``backend`` names a task driver;
    None for an array driver. ValueError when that driver lacks the kernel."""
    if not is_task_driver(backend):
        return None
    impl = _TASK[backend].get(kernel)
    if impl is None:
        raise ValueError(f"{kernel} has no {backend!r} implementation; "
                         f"it has: {sorted(_TASK[backend])}")
    return impl


def array_backend(backend: Any) -> Backend:
    """The array backend a kernel's data lives on: the named one, or the host (CPU) for a task
    driver, which takes host arrays and ships them itself."""
    return CPU if is_task_driver(backend) else get_backend(backend)
