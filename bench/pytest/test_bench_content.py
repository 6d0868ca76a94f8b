"""pytest-benchmark: TF-IDF content recommender."""

import pytest
from _suite import cases_for, run_benchmark


@pytest.mark.benchmark(group="tfidf_topk")
@pytest.mark.parametrize(("case", "scale"), cases_for("tfidf_topk"))
def test_tfidf_topk(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)
