"""Backend selection, host/device helpers and the memory guard."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_fast import backend
from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError, format_bytes
from recsys_fast.memory import _parse_size, available_bytes, check_memory, dense_bytes


def test_cpu_backend_namespaces():
    b = backend.get_backend("cpu")
    assert b.xp is np and b.sparse is sp
    b.sync()  # no-op, must not raise
    assert b.free_bytes() > 0


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="cpu, gpu"):
        backend.get_backend("tpu")


def test_gpu_request_without_device_is_clear(monkeypatch):
    monkeypatch.setattr(backend, "_gpu_probe", lambda: (None, "cupy not importable (test)"))
    assert not backend.gpu_available()
    with pytest.raises(BackendUnavailableError, match="cupy not importable"):
        backend.get_backend("gpu")
    assert backend.device_info() == {"gpu": None, "reason": "cupy not importable (test)"}


def test_to_host_and_to_device_roundtrip_on_cpu():
    a = np.arange(6.0).reshape(2, 3)
    m = sp.random(5, 4, density=0.5, format="coo", random_state=0)
    assert backend.to_host(a) is a
    assert backend.CPU.to_device(a) is a
    assert backend.to_host(m) is m
    assert backend.to_host(3.0) == 3.0


@pytest.mark.gpu
def test_gpu_to_device_roundtrip():
    b = backend.get_backend("gpu")
    m = sp.random(50, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    d = b.to_device(m)
    np.testing.assert_array_equal(backend.to_host(d).toarray(), m.toarray())
    b.sync()
    assert b.free_bytes() > 0


def test_dense_bytes_and_format():
    assert dense_bytes((1000, 1000), np.float64) == 8_000_000
    assert dense_bytes((10, 10), np.float32) == 400
    assert format_bytes(39.1 * 2**30) == "39.1 GiB"
    assert format_bytes(512) == "512 B"


@pytest.mark.parametrize("text,expected", [("8G", 8 << 30), ("512M", 512 << 20), ("1GiB", 1 << 30), ("1000", 1000)])
def test_parse_size(text, expected):
    assert _parse_size(text) == expected


def test_memory_guard_refuses_before_allocating(monkeypatch):
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "1M")
    assert available_bytes() == 1 << 20
    with pytest.raises(MemoryBudgetError) as err:
        check_memory("dense 943x1682 matrix", dense_bytes((943, 1682)))
    msg = str(err.value)
    assert "dense 943x1682 matrix" in msg and "needs 12.1 MiB" in msg and "1.0 MiB" in msg
    check_memory("small", 1000)  # fits: no error


def test_memory_budget_env_must_parse(monkeypatch):
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="RECSYS_FAST_MEMORY_BUDGET"):
        available_bytes()
