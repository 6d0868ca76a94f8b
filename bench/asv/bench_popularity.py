"""asv: IMDB weighted-rating chart (naive pandas apply vs vectorised)."""

from .common import _ExamplesMixin, _KernelBenchmark, params_for


class WeightedRating(_ExamplesMixin, _KernelBenchmark):
    kernel = "weighted_rating"
    params = params_for(kernel)
