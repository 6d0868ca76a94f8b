"""pytest-benchmark: IMDB weighted-rating chart."""

import pytest
from _suite import cases_for, run_benchmark


@pytest.mark.benchmark(group="weighted_rating")
@pytest.mark.parametrize(("case", "scale"), cases_for("weighted_rating"))
def test_weighted_rating(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)
