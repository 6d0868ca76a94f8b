"""asv: TF-IDF content recommender (course linear_kernel + iterrows vs sparse top-k)."""

from .common import _KernelBenchmark, params_for


class TfidfTopk(_KernelBenchmark):
    kernel = "tfidf_topk"
    params = params_for(kernel)
