"""pytest-benchmark: YouTube DNN training epoch and input pipeline."""

import pytest
from _suite import cases_for, run_benchmark


@pytest.mark.benchmark(group="dnn_epoch")
@pytest.mark.parametrize(("case", "scale"), cases_for("dnn_epoch"))
def test_dnn_epoch(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="dnn_epoch_sampled")
@pytest.mark.parametrize(("case", "scale"), cases_for("dnn_epoch_sampled"))
def test_dnn_epoch_sampled(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)


@pytest.mark.benchmark(group="dnn_pipeline")
@pytest.mark.parametrize(("case", "scale"), cases_for("dnn_pipeline"))
def test_dnn_pipeline(benchmark, case, scale):
    run_benchmark(benchmark, case, scale)
