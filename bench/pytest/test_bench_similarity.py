"""pytest-benchmark: course cosine distances and item-item top-k with peers."""

import pytest
from _suite import cases_for, run_benchmark


@pytest.mark.benchmark(group="cosine_distances")
@pytest.mark.parametrize(("case", "scale"), cases_for("cosine_distances"))
def test_cosine_distances(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="cosine_topk")
@pytest.mark.parametrize(("case", "scale"), cases_for("cosine_topk"))
def test_cosine_topk(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)
