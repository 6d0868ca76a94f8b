"""The YouTube candidate-generation DNN: one Keras model, features, tf.data/numpy pipelines.

Names are imported lazily (on first attribute access), so that ``recsys_fast.dnn.portable`` can
choose Keras' backend (``KERAS_BACKEND``) and hide TensorFlow *before* Keras is imported. The
data and kernel packages do not need Keras at all.
"""

import importlib

_EXPORTS = {
    "Ragged": "features",
    "UserFeatures": "features",
    "build_user_features": "features",
    "split_last": "features",
    "split_last_valid": "features",
    "build_model": "model",
    "build_sampled_model": "model",
    "compile_course": "model",
    "NumpyBatches": "pipeline",
    "make_tf_dataset": "pipeline",
    "plan_batches": "pipeline",
    "evaluate_recall": "train",
    "fit_optimised_epochs": "train",
    "keras_device": "train",
    "pipeline_throughput": "train",
    "predict_bucketed": "train",
    "prepare_optimised": "train",
    "recommend_topk": "train",
    "seconds_to_reach": "train",
    "train_until": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"recsys_fast.dnn.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'recsys_fast.dnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
