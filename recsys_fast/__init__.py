"""recsys_fast: naive course recommenders vs optimised kernels, benchmarked on CPU and GPU."""

__version__ = "0.1.0"
