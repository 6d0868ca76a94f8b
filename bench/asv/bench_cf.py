"""asv: user-item matrix build, the course's CF predictions, fixed-CF recommendations, k-NN prediction."""

from .common import _KernelBenchmark, params_for


class CsrBuild(_KernelBenchmark):
    kernel = "csr_build"
    params = params_for(kernel)


class CfCourseUser(_KernelBenchmark):
    kernel = "cf_course_user"
    params = params_for(kernel)


class CfCourseItem(_KernelBenchmark):
    kernel = "cf_course_item"
    params = params_for(kernel)


class CfFixedRecommend(_KernelBenchmark):
    kernel = "cf_fixed_recommend"
    params = params_for(kernel)


class KnnPredict(_KernelBenchmark):
    kernel = "knn_predict"
    params = params_for(kernel)
