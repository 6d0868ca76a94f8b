"""pytest-benchmark: every registered case at the enabled scales, grouped by kernel; the cases
come from the registry (generated from the implementation adapters), so nothing here changes
when a kernel or an implementation is added."""

import pytest
from _suite import all_cases, run_benchmark


@pytest.mark.parametrize(("case", "scale"), all_cases())
def test_kernel(benchmark, case, scale):
    benchmark.group = case.kernel
    run_benchmark(benchmark, case, scale)
