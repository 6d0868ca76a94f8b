"""Naive references: the course's recommenders, kept faithful and deliberately unoptimised.

``simple`` (IMDB weighted rating), ``collaborative`` (memory-based CF on a dense matrix),
``content`` (TF-IDF + linear_kernel + iterrows). The DNN reference lives in
``recsys_fast.naive.youtube_dnn`` and is not imported here, so that importing this package does
not pull in TensorFlow.
"""

from recsys_fast.naive import collaborative, content, simple

__all__ = ["collaborative", "content", "simple"]
