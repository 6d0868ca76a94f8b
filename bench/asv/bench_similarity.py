"""asv: course cosine distances and item-item top-k (ours vs implicit, sparse_dot_topn...)."""

from .common import _KernelBenchmark, params_for


class CosineDistances(_KernelBenchmark):
    kernel = "cosine_distances"
    params = params_for(kernel)


class CosineTopk(_KernelBenchmark):
    kernel = "cosine_topk"
    params = params_for(kernel)
