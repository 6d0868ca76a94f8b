"""The YouTube candidate-generation DNN: one Keras model, features, tf.data/numpy pipelines.

Importing this package imports Keras; the data and kernel packages do not need it.
"""

from recsys_fast.dnn.features import Ragged, UserFeatures, build_user_features, split_last
from recsys_fast.dnn.model import build_model, build_sampled_model, compile_course
from recsys_fast.dnn.pipeline import NumpyBatches, make_tf_dataset, plan_batches
from recsys_fast.dnn.train import (
    evaluate_recall,
    fit_optimised_epochs,
    pipeline_throughput,
    predict_bucketed,
    prepare_optimised,
    recommend_topk,
)

__all__ = [
    "NumpyBatches",
    "Ragged",
    "UserFeatures",
    "build_model",
    "build_sampled_model",
    "build_user_features",
    "compile_course",
    "evaluate_recall",
    "fit_optimised_epochs",
    "make_tf_dataset",
    "pipeline_throughput",
    "plan_batches",
    "predict_bucketed",
    "prepare_optimised",
    "recommend_topk",
    "split_last",
]
