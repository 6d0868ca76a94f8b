"""asv: IMDB weighted-rating chart (naive pandas apply vs vectorised)."""

from .common import _KernelBenchmark, params_for


class WeightedRating(_KernelBenchmark):
    kernel = "weighted_rating"
    params = params_for(kernel)
