"""pytest-benchmark: user-item matrix build, the course's CF predictions, fixed-CF recommend."""

import pytest
from _suite import cases_for, run_benchmark


@pytest.mark.benchmark(group="csr_build")
@pytest.mark.parametrize(("case", "scale"), cases_for("csr_build"))
def test_csr_build(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="cf_course_user")
@pytest.mark.parametrize(("case", "scale"), cases_for("cf_course_user"))
def test_cf_course_user(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="cf_course_item")
@pytest.mark.parametrize(("case", "scale"), cases_for("cf_course_item"))
def test_cf_course_item(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="cf_fixed_recommend")
@pytest.mark.parametrize(("case", "scale"), cases_for("cf_fixed_recommend"))
def test_cf_fixed_recommend(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="knn_predict")
@pytest.mark.parametrize(("case", "scale"), cases_for("knn_predict"))
def test_knn_predict(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)
