"""asv: YouTube DNN training epoch (naive one-batch vs tf.data) and the input pipeline."""

from .common import _KernelBenchmark, params_for


class DnnEpoch(_KernelBenchmark):
    kernel = "dnn_epoch"
    params = params_for(kernel)


class DnnEpochSampled(_KernelBenchmark):
    kernel = "dnn_epoch_sampled"
    params = params_for(kernel)


class DnnPipeline(_KernelBenchmark):
    kernel = "dnn_pipeline"
    params = params_for(kernel)
